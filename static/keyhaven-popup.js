// A popup's last page: tell the product's window how the flow ended, then close.
// The target origin is the link's return URL origin, written by the server.
(function () {
  "use strict";
  var result = document.getElementById("keyhaven-result");
  if (!result || !window.opener || window.opener.closed) {
    return; // Opened without a product window (or the opener was severed): the page says what to do.
  }
  var data = result.dataset;
  window.opener.postMessage(
    {
      type: "keyhaven:connection",
      status: data.status,
      provider: data.provider || null,
      connection_id: data.connectionId || null,
    },
    data.targetOrigin
  );
  window.close();
})();
