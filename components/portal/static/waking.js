// The "waking" page: ask the desktop's state each second; once it runs, post the Open form (the console link).
(function () {
  var form = document.getElementById("open-when-awake");
  var shown = document.getElementById("state");
  if (!form) { return; }
  function ask() {
    fetch(form.dataset.stateUrl, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : {state: "unknown"}; })
      .then(function (body) {
        shown.textContent = body.state;
        if (body.state === "running") { form.submit(); } else { setTimeout(ask, 1000); }
      })
      .catch(function () { setTimeout(ask, 2000); });
  }
  setTimeout(ask, 1000);
})();
