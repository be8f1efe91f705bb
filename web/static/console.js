// The console works without JavaScript; this only helps: after a refused form, the list of
// problems is focused so that a keyboard or screen-reader user hears it first.
document.addEventListener("DOMContentLoaded", function () {
  var summary = document.querySelector(".errors[tabindex]");
  if (summary) { summary.focus(); }
});
