"""The evidence room's less travelled paths, end to end in Chromium against a real
Parley server: a passphrase instead of a recovery code, vouching for a new device of
one's own, PDFs and images viewed inline under the strict CSP, bulk download, a
document's activity, the secretariat's actions (sharing pending documents with new
devices, granting to an interpreter, re-keying), revocation told live, the live
notice of new evidence, and the page's accessible controls.

One server and one browser for the module; each person has their own context. The
tests build on each other in order, as people do."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Dialog, Download, Page, expect

from tests.browser.evidence_env import Env, device_row, doc_row, evidence_env, ready, set_up_device, sha
from tests.fixtures.databases import Templates

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

PASSPHRASE = "correct horse battery staple, Bogotá"
PDF_TEXT = "Ley 1474 de 2011"


def one_page_pdf(text: str) -> bytes:
    """A minimal valid PDF, written by hand: one page with one line of text."""
    content = f"BT /F1 28 Tf 24 60 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 150] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A one-colour RGB PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PDF = one_page_pdf(PDF_TEXT)
IMAGE = png(12, 7, (200, 30, 40))
NOTES = "Notas de la visita — artículo 15".encode()
FILES = {"ley-1474.pdf": PDF, "organigrama.png": IMAGE, "notas.txt": NOTES}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async with evidence_env(templates, tmp_path_factory.mktemp("evidence-admin")) as e:
        yield e


def accept_dialogs(page: Page) -> None:
    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.on("dialog", accept)


async def document_id(page: Page, name: str) -> str:
    return await doc_row(page, name).get_attribute("data-document") or ""


async def version_of(page: Page, document: str) -> str:
    answer = await page.request.get(f"/api/visits/{page.url.split('/visits/')[1].split('/')[0]}/documents")
    assert answer.ok
    return next(d["version"]["id"] for d in (await answer.json())["documents"] if d["id"] == document)


async def dark_pixels(page: Page) -> int:
    """Pixels of the PDF canvas darker than mid-grey (the text pdf.js drew)."""
    return int(await page.evaluate("""() => {
      const c = document.querySelector("#ev-viewer canvas.ev-pdf");
      if (!c || !c.width) return 0;
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] < 128 && d[i + 1] < 128 && d[i + 2] < 128) n++;
      return n;
    }"""))


# ---- devices -----------------------------------------------------------------------------------


async def test_a_passphrase_instead_of_a_recovery_code(env: Env) -> None:
    for key in ("secretariat", "expert"):
        await set_up_device(await env.open(key))
    delegate = await env.open("delegate")
    page = delegate.page
    await page.get_by_label("Use a passphrase instead of a recovery code").check()
    await page.get_by_label("Passphrase", exact=True).fill("too short")
    await page.get_by_label("The same passphrase again").fill("too short")
    await page.get_by_role("button", name="Set up encryption on this browser").click()
    await expect(page.locator("#ev-error")).to_contain_text("at least 12 characters")
    await page.get_by_label("Passphrase", exact=True).fill(PASSPHRASE)
    await page.get_by_label("The same passphrase again").fill(PASSPHRASE + "!")
    await page.get_by_role("button", name="Set up encryption on this browser").click()
    await expect(page.locator("#ev-error")).to_contain_text("not the same")
    await page.get_by_label("The same passphrase again").fill(PASSPHRASE)
    await page.get_by_role("button", name="Set up encryption on this browser").click()
    await expect(page.locator("#ev-own-code")).to_have_text(re.compile(r"^\d{5} \d{5} \d{5} \d{5}$"))
    await expect(page.locator("#ev-recovery-code")).to_have_count(0)  # no code to show
    answer = await page.request.get("/api/me/recovery")
    [blob] = (await answer.json())["blobs"]
    assert blob["kdf"] == "pbkdf2-sha256" and blob["iterations"] >= 600_000
    assert PASSPHRASE not in await answer.text()

    # Another browser of the delegate restores with the passphrase (a wrong one opens nothing).
    other = await env.open("delegate", name="delegate-laptop")
    await other.page.locator("#ev-restore-secret").fill(PASSPHRASE.upper())
    await other.page.get_by_role("button", name="Restore").click()
    await expect(other.page.locator("#ev-error")).to_contain_text("does not open")
    await other.page.locator("#ev-restore-secret").fill(PASSPHRASE)
    await other.page.get_by_role("button", name="Restore").click()
    await expect(other.page.locator("#ev-own-code")).to_have_text(await page.locator("#ev-own-code").inner_text())
    await other.page.context.close()


async def test_a_new_device_of_ones_own_is_vouched_for_and_others_trust_it(env: Env) -> None:
    expert, delegate = env.people["expert"], env.people["delegate"]
    expert_id = env.world.members["expert"].person_id
    await delegate.page.reload()
    await ready(delegate.page)
    row = device_row(delegate.page, expert_id)
    await row.get_by_role("button", name="Verify").click()
    await row.get_by_role("button", name="The codes match").click()
    await expect(row.locator(".badge")).to_have_text("verified")

    laptop = await env.open("expert", name="expert-laptop")
    await set_up_device(laptop)
    env.people["expert-laptop"] = laptop
    new_id = await laptop.page.locator(f'.ev-person[data-person="{expert_id}"] .ev-device',
                                       has=laptop.page.locator(".badge", has_text="this browser")).get_attribute("data-device")
    # Others first pin the new device: seen, not verified.
    await delegate.page.reload()
    await ready(delegate.page)
    theirs = delegate.page.locator(f'.ev-device[data-device="{new_id}"]')
    await expect(theirs.locator(".badge")).to_have_text("pinned")
    # The expert's first browser vouches for it after comparing the codes.
    await expert.page.reload()
    await ready(expert.page)
    mine = expert.page.locator(f'.ev-device[data-device="{new_id}"]')
    await expect(mine.get_by_role("button", name="Verify")).to_have_count(0)
    await mine.get_by_role("button", name="Vouch for this device").click()
    assert await mine.locator(".ev-their-code").inner_text() == await laptop.page.locator("#ev-own-code").inner_text()
    await mine.get_by_role("button", name="The codes match").click()
    await expect(mine.locator(".badge")).to_have_text("verified")
    # The delegate verified the expert's first device, so its cross-signature counts.
    await delegate.page.reload()
    await ready(delegate.page)
    await expect(theirs.locator(".badge")).to_have_text("verified")
    # The secretariat never verified the expert: for it the new device stays pinned only.
    secretariat = env.people["secretariat"].page
    await secretariat.reload()
    await ready(secretariat)
    await expect(secretariat.locator(f'.ev-device[data-device="{new_id}"] .badge')).to_have_text("pinned")


# ---- viewing, bulk download, activity ----------------------------------------------------------


async def test_pdfs_and_images_are_viewed_inline(env: Env) -> None:
    page = env.people["delegate"].page
    await page.reload()
    await ready(page)
    await page.locator("#ev-placement").select_option(f"s:{env.world.sessions['open']}")
    await page.locator("#ev-files").set_input_files([env.file(n, d) for n, d in FILES.items()])
    await page.get_by_role("button", name="Encrypt and send").click()
    await expect(page.locator('.ev-file[data-state="sent"]')).to_have_count(3, timeout=30_000)
    for name in FILES:
        bar = page.get_by_role("progressbar", name=f"Progress of {name}")
        await expect(bar).to_have_attribute("aria-valuenow", "100")

    expert = env.people["expert"].page
    await expert.reload()
    await ready(expert)
    await expect(doc_row(expert, "notas.txt").get_by_role("button", name="View")).to_have_count(0)
    fetched: list[tuple[str, int]] = []

    async def served(response: Any) -> None:
        if "/static/vendor/pdf" in response.url:
            fetched.append((response.url.rsplit("/", 1)[1], response.status))

    expert.context.on("response", served)
    await doc_row(expert, "ley-1474.pdf").get_by_role("button", name="View").click()
    viewer = expert.locator("#ev-viewer")
    await expect(viewer.locator("canvas.ev-pdf")).to_have_attribute("data-page", "1")
    await expect(viewer.locator("#ev-pdf-page")).to_have_text("Page 1 of 1")
    assert await dark_pixels(expert) > 100
    # Helvetica is not embedded: the worker fetched the standard font from Parley.
    assert ("LiberationSans-Regular.ttf", 200) in fetched, fetched
    assert ("pdf.worker.min.mjs", 200) in fetched, fetched
    # In a real worker (pdf.js falls back to parsing on the page when its worker is refused).
    assert any(w.url.endswith("/static/vendor/pdf.worker.min.mjs") for w in expert.workers), expert.workers
    await doc_row(expert, "organigrama.png").get_by_role("button", name="View").click()
    image = viewer.get_by_role("img", name="organigrama.png")
    await expect(image).to_be_visible()
    assert await image.evaluate("(img) => [img.complete, img.naturalWidth, img.naturalHeight]") == [True, 12, 7]
    await viewer.get_by_role("button", name="Close").click()
    await expect(viewer).to_be_hidden()
    assert not env.problems, env.problems  # no CSP violation, no console error


async def test_a_sessions_documents_are_downloaded_at_once(env: Env) -> None:
    expert = env.people["expert"].page
    downloads: list[Download] = []
    expert.on("download", lambda d: downloads.append(d))
    group = expert.locator(f'.ev-group[data-session="{env.world.sessions["open"]}"]')
    await group.get_by_role("button", name="Download all").click()
    await expect(expert.locator("#ev-status")).to_have_text("notas.txt was decrypted and saved.", timeout=20_000)
    expect_len = len(FILES)
    for _ in range(50):
        if len(downloads) >= expect_len:
            break
        await expert.wait_for_timeout(100)
    got = {d.suggested_filename: sha(Path(await d.path()).read_bytes()) for d in downloads}
    assert got == {name: sha(data) for name, data in FILES.items()}
    assert len(downloads) == expect_len


async def test_the_uploading_delegation_and_the_secretariat_see_who_opened_a_document(env: Env) -> None:
    for key in ("delegate", "secretariat"):
        page = env.people[key].page
        await page.reload()
        await ready(page)
        row = doc_row(page, "ley-1474.pdf")
        await row.get_by_role("button", name="Activity").click()
        panel = row.get_by_role("region", name="Activity of ley-1474.pdf")
        await expect(panel.locator(".ev-activity-entry", has_text="Delegate Person uploaded it")).to_have_count(1)
        await expect(panel.locator(".ev-activity-entry", has_text="Expert Person opened or downloaded it")).not_to_have_count(0)
    expert = env.people["expert"].page
    await expect(doc_row(expert, "ley-1474.pdf").get_by_role("button", name="Activity")).to_have_count(0)
    answer = await expert.request.get(f"/api/documents/{await document_id(expert, 'ley-1474.pdf')}/audit")
    assert answer.status == 403


# ---- the secretariat's actions -----------------------------------------------------------------


async def test_pending_documents_are_shared_with_a_new_person_who_sees_them_live(env: Env) -> None:
    newcomer = await env.open("expert2")
    await set_up_device(newcomer)
    page = newcomer.page
    await expect(doc_row(page, "ley-1474.pdf")).to_have_count(0)
    await expect(page.locator(".ev-doc .ev-problem").first).to_contain_text("no key to this document yet")
    await expect(page.locator("body")).to_have_attribute("data-evidence-live", "on")
    secretariat = env.people["secretariat"].page
    await secretariat.reload()
    await ready(secretariat)
    await secretariat.get_by_role("button", name="Share pending documents").click()
    # The expert's new device had its keys from the upload; the newcomer's device gets all three.
    await expect(secretariat.locator("#ev-admin-result")).to_have_text("3 document(s) shared with 1 device(s).")
    # No reload: the newcomer's page hears evidence.shared and says so.
    await expect(doc_row(page, "ley-1474.pdf").locator(".ev-verified")).to_have_text(
        "verified: uploaded by Delegate Person, Colombia")
    await expect(page.locator("#ev-news")).to_contain_text("New evidence was shared with you")
    async with page.expect_download() as info:
        await doc_row(page, "notas.txt").get_by_role("button", name="Download").click()
    assert Path(await (await info.value).path()).read_bytes() == NOTES


async def test_only_the_secretariat_grants_a_document_to_an_interpreter(env: Env) -> None:
    interpreter = await env.open("interpreter")
    await set_up_device(interpreter)
    expert = env.people["expert"].page
    await expert.reload()
    await ready(expert)
    pdf = await document_id(expert, "ley-1474.pdf")
    await expect(expert.locator(".ev-grant")).to_have_count(0)
    # Nor through the API: a share signed by the expert's device to the interpreter is refused.
    version, share = await expert.evaluate(
        """async ({visit, person, interpreter, document}) => {
          const ev = await import("/static/js/evidence_crypto.js");
          const ek = await import("/static/js/evidence_keys.js");
          const mine = await ek.loadDevice(await ek.openKeyStore(), person);
          const docs = (await (await fetch(`/api/visits/${visit}/documents`)).json()).documents;
          const v = docs.find((d) => d.id === document).version;
          const K = await ev.unwrapKey(ev.unb64u(v.keys.find((k) => k.device === mine.device).wrapped),
                                       mine.keys, ev.wrapInfo(visit, v.id, mine.device));
          const people = (await (await fetch(`/api/visits/${visit}/keys`)).json()).people;
          const d = people.find((p) => p.person === interpreter).devices[0];
          const target = {id: d.id, person: d.person, sig_alg: d.sig_alg, sig_pub: d.sig_pub, enc_pub: d.enc_pub};
          const body = await ev.makeShare({manifestText: v.manifest, version: v.id, by: mine.wire, recipients: [target]});
          const signed = await ev.signStatement(mine.keys, body);
          const keys = [await ev.wrapForDevice(K, target, visit, v.id)];
          return [v.id, {body: signed.body, signature: signed.signature, keys}];
        }""",
        {"visit": env.world.visit_id, "person": env.world.members["expert"].person_id,
         "interpreter": env.world.members["interpreter"].person_id, "document": pdf},
    )
    refused = await expert.request.post(f"/api/versions/{version}/shares", data=share,
                                        headers={"Origin": env.server.url})
    assert refused.status == 403, await refused.text()
    await expect(doc_row(interpreter.page, "ley-1474.pdf")).to_have_count(0)

    secretariat = env.people["secretariat"].page
    await secretariat.reload()
    await ready(secretariat)
    row = doc_row(secretariat, "ley-1474.pdf")
    await row.get_by_label("Grant to…").select_option(label="Interpreter Person (interpreter)")
    await row.get_by_role("button", name="Grant", exact=True).click()
    await expect(secretariat.locator("#ev-status")).to_have_text("The document was granted.")
    page = interpreter.page  # live, no reload
    await expect(page.locator("#ev-news")).to_contain_text("New evidence was shared with you: ley-1474.pdf")
    await doc_row(page, "ley-1474.pdf").get_by_role("button", name="View").click()
    await expect(page.locator("#ev-viewer canvas.ev-pdf")).to_have_attribute("data-page", "1")
    assert await dark_pixels(page) > 100
    await expect(doc_row(page, "notas.txt")).to_have_count(0)  # only what was granted


# ---- revocation and re-keying ------------------------------------------------------------------


async def test_a_revoked_browser_is_told_live_and_its_downloads_refused(env: Env) -> None:
    newcomer = env.people["expert2"].page
    content = f"/api/versions/{await version_of(newcomer, await document_id(newcomer, 'notas.txt'))}/content"
    assert (await newcomer.request.get(content)).status == 200
    device = await newcomer.locator(".ev-device", has=newcomer.locator(".badge", has_text="this browser")).get_attribute("data-device")
    secretariat = env.people["secretariat"].page
    accept_dialogs(secretariat)
    await secretariat.reload()
    await ready(secretariat)
    await secretariat.locator(f'.ev-device[data-device="{device}"]').get_by_role("button", name="Revoke").click()
    await expect(secretariat.locator(f'.ev-device[data-device="{device}"] .badge')).to_have_text("revoked")
    # The newcomer's page hears evidence.revoked: keys forgotten here, the reason shown.
    await expect(newcomer.locator("#ev-device").get_by_role("alert")).to_contain_text("device was revoked")
    await expect(newcomer.get_by_role("button", name="Set up encryption on this browser")).to_be_visible()
    stored = await newcomer.evaluate(
        """async (person) => { const ek = await import("/static/js/evidence_keys.js");
                                return (await ek.loadDevice(await ek.openKeyStore(), person)) === undefined; }""",
        env.world.members["expert2"].person_id)
    assert stored is True
    assert (await newcomer.request.get(content)).status == 403

    # The owner revokes their own second device from the first: told live too.
    laptop = env.people["expert-laptop"].page
    own = await laptop.locator(".ev-device", has=laptop.locator(".badge", has_text="this browser")).get_attribute("data-device")
    expert = env.people["expert"].page
    accept_dialogs(expert)
    await expert.reload()
    await ready(expert)
    await expert.locator(f'.ev-device[data-device="{own}"]').get_by_role("button", name="Revoke").click()
    await expect(laptop.locator("#ev-device").get_by_role("alert")).to_contain_text("device was revoked")
    await expect(doc_row(laptop, "ley-1474.pdf")).to_have_count(0)


async def test_a_rekeyed_document_opens_for_its_recipients_and_the_old_version_is_gone(env: Env) -> None:
    secretariat = env.people["secretariat"].page
    await secretariat.reload()
    await ready(secretariat)
    pdf = await document_id(secretariat, "ley-1474.pdf")
    old = await version_of(secretariat, pdf)
    await doc_row(secretariat, "ley-1474.pdf").get_by_role("button", name="Re-key").click()
    await expect(secretariat.locator("#ev-status")).to_have_text("ley-1474.pdf was encrypted again with a new key.")
    new = await version_of(secretariat, pdf)
    assert new != old
    for key in ("expert", "delegate", "interpreter"):
        page = env.people[key].page
        await page.reload()
        await ready(page)
        # The old version's ciphertext is deleted, for those who held a key to it too.
        assert (await page.request.get(f"/api/versions/{old}/content")).status in (403, 404)
        await expect(doc_row(page, "ley-1474.pdf").locator(".ev-verified")).to_have_text(
            "verified: uploaded by Delegate Person, Colombia; encrypted again by Secretariat Person")
        async with page.expect_download() as info:
            await doc_row(page, "ley-1474.pdf").get_by_role("button", name="Download").click()
        assert sha(Path(await (await info.value).path()).read_bytes()) == sha(PDF)
    # The revoked device was not a recipient of the new version; its person holds no key at all.
    newcomer = env.people["expert2"].page
    for version in (old, new):
        assert (await newcomer.request.get(f"/api/versions/{version}/content")).status in (403, 404)
    upload = await secretariat.request.get(f"/api/visits/{env.world.visit_id}/documents")
    manifest = next(d for d in (await upload.json())["documents"] if d["id"] == pdf)["version"]["manifest"]
    assert env.world.members["expert2"].person_id not in manifest
    assert env.world.members["interpreter"].person_id in manifest


# ---- news -------------------------------------------------------------------------------------


async def test_the_delegation_is_told_of_new_evidence_on_the_visit_and_evidence_pages(env: Env) -> None:
    delegate = env.people["delegate"].page
    await delegate.reload()
    await ready(delegate)
    await expect(delegate.locator("#ev-news")).to_be_hidden()
    visit_page = await delegate.context.new_page()
    await visit_page.goto(f"/visits/{env.world.visit_id}")
    await expect(visit_page.locator("#agenda-body")).to_have_attribute("data-live", "on")
    notice = visit_page.get_by_role("status").filter(has_text="New evidence was shared with you.")
    await expect(notice).to_be_hidden()
    await expect(delegate.locator("body")).to_have_attribute("data-evidence-live", "on")

    expert = env.people["expert"].page
    await expert.reload()
    await ready(expert)
    await expert.locator("#ev-files").set_input_files(env.file("preguntas del equipo.txt", b"Questions on article 16"))
    await expert.get_by_role("button", name="Encrypt and send").click()
    await expect(expert.locator('.ev-file[data-state="sent"]')).to_have_count(1)
    # Neither page of the delegate was reloaded.
    await expect(notice).to_be_visible()
    await expect(notice.get_by_role("link", name="Open the evidence room")).to_have_attribute(
        "href", f"/visits/{env.world.visit_id}/evidence")
    await expect(delegate.locator("#ev-news")).to_have_text(
        "New evidence was shared with you: preguntas del equipo.txt")
    await expect(doc_row(delegate, "preguntas del equipo.txt").locator(".ev-verified")).to_have_text(
        "verified: uploaded by Expert Person, Kenya")
    # The uploader's own page does not announce its own upload.
    await expect(expert.locator("#ev-news")).to_be_hidden()
    await visit_page.close()


# ---- accessibility -----------------------------------------------------------------------------


A11Y_FINDINGS = """() => {
  const out = [];
  const main = document.querySelector("main") || document.body;
  for (const c of main.querySelectorAll("input, select, textarea")) {
    if (c.type === "hidden") continue;
    if (!(c.labels && c.labels.length) && !c.getAttribute("aria-label") && !c.getAttribute("aria-labelledby"))
      out.push(`unlabelled ${c.tagName} ${c.id || c.className}`);
  }
  for (const b of main.querySelectorAll("button")) {
    if (!b.textContent.trim() && !b.getAttribute("aria-label")) out.push(`nameless button ${b.className}`);
    if (!["button", "submit"].includes(b.getAttribute("type"))) out.push(`button without a type ${b.className}`);
  }
  for (const n of main.querySelectorAll("[tabindex], [onclick]"))
    if (!["BUTTON", "A", "INPUT", "SELECT", "TEXTAREA"].includes(n.tagName) && !n.getAttribute("role"))
      out.push(`focusable ${n.tagName} without a role`);
  for (const p of main.querySelectorAll("progress"))
    if (p.getAttribute("role") !== "progressbar" || !p.getAttribute("aria-label") ||
        p.getAttribute("aria-valuemin") !== "0" || p.getAttribute("aria-valuemax") !== "100" ||
        p.getAttribute("aria-valuenow") === null) out.push(`progress ${p.getAttribute("aria-label")}`);
  return out;
}"""


async def test_controls_are_labelled_buttons_and_progress_bars_say_their_value(env: Env) -> None:
    page = env.people["secretariat"].page
    await page.reload()
    await ready(page)
    findings: list[Any] = await page.evaluate(A11Y_FINDINGS)
    assert findings == []
    assert await page.locator("main progress").count() >= 3  # one per document, the batch bar
    # A browser without a device: the set-up and restore forms.
    newcomer = env.people["expert2"].page
    await newcomer.get_by_label("Use a passphrase instead of a recovery code").check()
    assert await newcomer.locator("main input[type=password]").count() == 3
    assert await newcomer.evaluate(A11Y_FINDINGS) == []
