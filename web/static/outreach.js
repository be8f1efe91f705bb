// Outreach pages: live previews (the composer's count and message, a knowledge article's
// answer), and progress that refreshes itself.
// Everything works without JavaScript (the forms post and the page comes back); this only
// saves the clicks. No inline script: the console's CSP allows files from /static only.
(function () {
  "use strict";

  function debounce(fn, ms) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  function showOnly(selector, attr, value) {
    document.querySelectorAll(selector).forEach(function (el) {
      var on = el.getAttribute(attr) === value;
      el.hidden = !on;
      el.querySelectorAll("input, select, textarea").forEach(function (f) { f.disabled = !on; });
    });
  }

  function setUpPreview(form) {
    var target = document.getElementById(form.getAttribute("data-target") || "compose-result");
    var url = form.getAttribute("data-preview");
    var pending = null;
    var refresh = debounce(function () {
      if (pending) { pending.abort(); }
      pending = new AbortController();
      target.setAttribute("aria-busy", "true");
      fetch(url, { method: "POST", body: new FormData(form), credentials: "same-origin", signal: pending.signal })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { target.innerHTML = html; })
        .catch(function () { /* keep the last preview; the buttons still work */ })
        .finally(function () { target.removeAttribute("aria-busy"); });
    }, 450);
    form.addEventListener("input", refresh);
    form.addEventListener("change", function (event) {
      var t = event.target;
      if (t.name === "mode") { showOnly("[data-mode]", "data-mode", t.value); }
      if (t.name === "template_kind") { showOnly("[data-kind]", "data-kind", t.value); }
      refresh();
    });
    var mode = form.querySelector("input[name=mode]:checked");
    if (mode) { showOnly("[data-mode]", "data-mode", mode.value); }
    var kind = form.querySelector("select[name=template_kind]");
    if (kind && mode && mode.value === "template") { showOnly("[data-kind]", "data-kind", kind.value); }
    refresh();
  }

  function setUpRefresh(el) {
    var every = parseInt(el.getAttribute("data-every") || "3000", 10);
    var url = el.getAttribute("data-refresh");
    setTimeout(function () {
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var box = document.createElement("div");
          box.innerHTML = html;
          var fresh = box.firstElementChild;
          if (!fresh) { return; }
          el.replaceWith(fresh);
          if (fresh.hasAttribute("data-refresh")) { setUpRefresh(fresh); }
        })
        .catch(function () { setUpRefresh(el); });
    }, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-preview]").forEach(setUpPreview);
    document.querySelectorAll("[data-refresh]").forEach(setUpRefresh);
    // A conversation opens at its latest message.
    document.querySelectorAll("[data-scroll-end]").forEach(function (el) { el.scrollTop = el.scrollHeight; });
  });
}());
