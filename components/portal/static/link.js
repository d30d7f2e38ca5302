// The one-time sign-in link's page: post the token from the URL's fragment (which the browser never sends),
// after taking it out of the address bar and the history.
(function () {
  var form = document.getElementById("link-signin");
  var token = window.location.hash.slice(1);
  if (!form || !token) { return; }
  history.replaceState(null, "", window.location.pathname);
  document.getElementById("token").value = token;
  form.submit();
})();
