// Copy buttons, confirmations and the auto-refresh of running tickets; the pages work without it.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      const source = button.dataset.copyFrom && document.getElementById(button.dataset.copyFrom);
      const text = source ? source.textContent.trim() : button.dataset.copy;
      try {
        await navigator.clipboard.writeText(text);
      } catch (error) {  // no clipboard API (plain http): select the text for Ctrl+C
        if (source) window.getSelection().selectAllChildren(source);
      }
      button.textContent = "Copied";
    });
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  const refresh = Number(document.body.dataset.refresh);
  if (refresh > 0) setTimeout(() => window.location.reload(), refresh * 1000);
});
