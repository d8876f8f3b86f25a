// faxhook console: live updates of the element #live (its data-live names the page fragment
// the server renders for it), and actions posted without leaving the page.
"use strict";
(function () {
  var live = document.getElementById("live");
  var flash = document.getElementById("flash");
  function refresh() {
    if (!live) { return; }
    var u = new URL(window.location.href);
    u.searchParams.delete("done");
    u.searchParams.set("fragment", live.dataset.live.replace(/^[a-z]+-/, ""));
    fetch(u.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { live.innerHTML = html; } })
      .catch(function () { /* the next round tries again */ });
  }
  if (live) { window.setInterval(refresh, 2000); }
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("js-post")) { return; }
    ev.preventDefault();
    fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (out) { if (flash) { flash.textContent = out.message; } refresh(); })
      .catch(function (e) { if (flash) { flash.textContent = "The action failed: " + e; } });
  });
})();
