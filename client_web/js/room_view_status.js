// The room's head: the connection banner (#conn-status), the error line (#room-error)
// with a rate limit's countdown, and the "You chair this session" badge.

import { $, fmt } from "./room_ui.js";

export function createStatusView(S) {
  let waitHandle = null; // counts down a rate limit's retry_after

  function error(message) {
    const node = $("room-error");
    node.textContent = message;
    node.hidden = false;
  }

  function clearError() {
    if (waitHandle !== null) {
      window.clearInterval(waitHandle);
      waitHandle = null;
    }
    const node = $("room-error");
    node.hidden = true;
    node.textContent = "";
  }

  return {
    /** The banner: `key` names one of the page's strings, `kind` its data-state. */
    status(key, kind) {
      const node = $("conn-status");
      node.textContent = S[key];
      node.dataset.state = kind;
    },
    error,
    clearError,
    /** A rate limit: say how long to wait, counting down, then clear the message. */
    wait(retryAfter) {
      clearError();
      let left = Math.max(1, Math.ceil(Number(retryAfter) || 1));
      error(fmt(S.rate_limited, { n: left }));
      waitHandle = window.setInterval(() => {
        left -= 1;
        if (left > 0) $("room-error").textContent = fmt(S.rate_limited, { n: left });
        else clearError();
      }, 1000);
    },
    render({ may }) {
      const badge = $("chair-badge");
      if (badge) badge.hidden = !may.isChair;
    },
  };
}
