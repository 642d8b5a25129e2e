// Tollgate dashboard: progressive enhancement only. Every page works without this file;
// with it, revoking and deleting ask first, a new key has a copy button, select boxes
// marked data-autosubmit submit their form, and the request log refreshes itself.
// Served from the binary (src/admin/ui/assets.rs); the page's CSP forbids inline script.
"use strict";

document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

for (const button of document.querySelectorAll("[data-copy]")) {
  button.hidden = false;
  button.addEventListener("click", async () => {
    const source = document.getElementById(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(source.textContent.trim());
      button.textContent = "Copied";
    } catch (_) {
      window.getSelection().selectAllChildren(source);
      button.textContent = "Press Ctrl+C";
    }
  });
}

for (const select of document.querySelectorAll("select[data-autosubmit]")) {
  select.addEventListener("change", () => select.form.requestSubmit());
}

// The request log: while the box is ticked and the tab visible, the newest page's rows
// are fetched again every few seconds (the admin listener answers whole responses, so
// polling is all it takes).
const live = document.querySelector("tbody[data-refresh]");
const auto = document.getElementById("auto-refresh");
if (live && auto) {
  auto.closest("label").hidden = false;
  setInterval(async () => {
    if (!auto.checked || document.hidden) {
      return;
    }
    try {
      const response = await fetch(live.dataset.refresh, { credentials: "same-origin" });
      if (response.ok) {
        live.innerHTML = await response.text();
      }
    } catch (_) {
      // The next tick tries again.
    }
  }, 5000);
}
