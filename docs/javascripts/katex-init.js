// Render every math element pymdownx.arithmatex produced (generic mode: \( \) inline, \[ \] display) with the
// KaTeX copied into the site by docs/hooks/katex.py. Material's document$ re-runs this on instant navigation.
(function () {
  function render(root) {
    root.querySelectorAll(".arithmatex").forEach(function (el) {
      if (el.dataset.rendered) return;
      var tex = el.textContent.trim();
      var display = el.tagName === "DIV";
      tex = tex.replace(/^\\[\(\[]/, "").replace(/\\[\)\]]$/, "");
      katex.render(tex, el, { displayMode: display, throwOnError: false, strict: false });
      el.dataset.rendered = "1";
    });
  }
  if (typeof document$ !== "undefined") {
    document$.subscribe(function () { render(document); });
  } else {
    document.addEventListener("DOMContentLoaded", function () { render(document); });
  }
})();
