// The scheduling page: while a run or an acceptance is under way, its button is
// disabled (no double submissions) and a status line says what is happening.
// Everything else is plain HTML forms that work without this script.

const data = JSON.parse(document.getElementById("schedule-data").textContent);

const runForm = document.getElementById("run-form");
if (runForm) {
  runForm.addEventListener("submit", () => {
    const button = document.getElementById("run-button");
    // Disabled after the browser has taken the form's values (a disabled button's own
    // value would be left out, but this one has none).
    window.setTimeout(() => { button.disabled = true; }, 0);
    document.getElementById("run-status").textContent = data.strings.running;
  });
}

for (const form of document.querySelectorAll("form.accept")) {
  form.addEventListener("submit", () => {
    window.setTimeout(() => {
      for (const button of document.querySelectorAll("form.accept button")) button.disabled = true;
    }, 0);
  });
}
