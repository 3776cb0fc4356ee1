// Copy buttons for the admin console: the page works without this script; it only
// reveals the buttons and copies the named field's value.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () {
        field.select();
      });
    } else {
      field.select();
      if (document.execCommand("copy")) done();
    }
  });
});
