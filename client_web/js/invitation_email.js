// Invitation e-mail preview: "Send this e-mail" posts to the JSON API and says what happened.
const preview = document.getElementById("mail-preview");
const button = document.getElementById("mail-send");
const status = document.getElementById("mail-status");

if (preview && button && status) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "";
    try {
      const response = await fetch(`/api/sessions/${preview.dataset.sessionId}/invitation-email/send`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ membership_id: preview.dataset.membershipId }),
        credentials: "same-origin",
      });
      const answer = await response.json();
      if (response.ok && answer.sent) {
        status.textContent = status.dataset.sent;
      } else {
        status.textContent = `${status.dataset.failed} ${answer.error ? answer.error.message : response.status}`;
        button.disabled = false;
      }
    } catch (err) {
      status.textContent = `${status.dataset.failed} ${err}`;
      button.disabled = false;
    }
  });
}
