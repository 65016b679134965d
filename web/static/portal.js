// The few things a page needs a script for: copy buttons and the player.
// Everything works without it (the value is selectable, a clip link opens the clip).
"use strict";
document.addEventListener("click", function (ev) {
  var copy = ev.target.closest("[data-copy]");
  if (copy) {
    var text = document.getElementById(copy.dataset.copy).textContent.trim();
    var done = function () { copy.dataset.label = copy.dataset.label || copy.textContent; copy.textContent = "✓"; setTimeout(function () { copy.textContent = copy.dataset.label; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); }
    else { var r = document.createRange(); r.selectNodeContents(document.getElementById(copy.dataset.copy)); var s = getSelection(); s.removeAllRanges(); s.addRange(r); document.execCommand("copy"); done(); }
    return;
  }
  var clip = ev.target.closest("[data-play]");
  var player = document.getElementById("player");
  if (clip && player) {
    ev.preventDefault();
    document.querySelectorAll("[data-play][aria-current]").forEach(function (el) { el.removeAttribute("aria-current"); });
    clip.setAttribute("aria-current", "true");
    player.src = clip.dataset.play;
    player.play().catch(function () {});
    var label = clip.getAttribute("aria-label") || clip.textContent.trim();
    document.getElementById("now-playing").textContent = label;
    // the media service says whether the codec plays here (HEVC: only some browsers)
    var warn = document.getElementById("hevc-warning");
    warn.hidden = true;
    var parts = clip.dataset.play.split("?");
    fetch(parts[0] + "/probe" + (parts[1] ? "?" + parts[1] : ""), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (info) { if (info && info.plays_in_browser === false) { warn.hidden = false; } })
      .catch(function () {});
    var dl = document.getElementById("download");
    dl.href = clip.dataset.original;
    dl.hidden = false;
    player.focus();
  }
});
