// Keyhaven connect, the product's side: open a connect link in a popup and learn how it
// ended. Serve this file yourself or load it from your Keyhaven's /static/keyhaven-connect.js.
//
//   KeyhavenConnect.open(linkUrl).then(function (result) {
//     // result.status: "connected" | "cancelled" | "failed" | "closed"
//     // result.provider, result.connection_id (when connected)
//   });
//
// The link must be created with mode "popup" and a return_url on this page's origin.
// "closed" means the window closed without a message: a provider page sent with
// Cross-Origin-Opener-Policy can sever window.opener. Then ask your backend, which asks
// Keyhaven's API (GET /api/v1/end-users/{external_id}/connections).
(function (global) {
  "use strict";

  function open(linkUrl, options) {
    options = options || {};
    var keyhavenOrigin = new URL(linkUrl, global.location.href).origin;
    var width = options.width || 560;
    var height = options.height || 720;
    var left = Math.max(0, (global.screenX || 0) + ((global.outerWidth || width) - width) / 2);
    var top = Math.max(0, (global.screenY || 0) + ((global.outerHeight || height) - height) / 2);
    var popup = global.open(
      linkUrl,
      options.name || "keyhaven-connect",
      "popup,width=" + width + ",height=" + height + ",left=" + left + ",top=" + top
    );
    return new Promise(function (resolve, reject) {
      if (!popup) {
        reject(new Error("The popup was blocked: call KeyhavenConnect.open from a click."));
        return;
      }
      var finished = false;
      var watcher = null;
      function finish(result) {
        if (finished) return;
        finished = true;
        global.removeEventListener("message", onMessage);
        global.clearInterval(watcher);
        resolve(result);
      }
      function onMessage(event) {
        if (event.origin !== keyhavenOrigin) return;
        var data = event.data;
        if (!data || data.type !== "keyhaven:connection") return;
        finish({
          status: data.status,
          provider: data.provider || null,
          connection_id: data.connection_id || null,
        });
      }
      global.addEventListener("message", onMessage);
      watcher = global.setInterval(function () {
        if (popup.closed) {
          // A message posted just before closing may still be on its way.
          global.setTimeout(function () {
            finish({ status: "closed", provider: null, connection_id: null });
          }, 500);
          global.clearInterval(watcher);
        }
      }, 400);
    });
  }

  global.KeyhavenConnect = { open: open };
})(window);
