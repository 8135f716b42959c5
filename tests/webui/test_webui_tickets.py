"""/tickets: status, progress, queue position, log with inline attachments, downloads, retry,
delete; other users' tickets are 404."""
from __future__ import annotations

import re

import pytest

from webui_support import page_text, post_form, upload

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
       b"\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def work(site):
    """A provider, a service, a user with two tickets: one being processed, one queued."""
    githash = site.service("TicketSvc", provider="ticket-lab")
    provider = site.provider_client("ticket-lab")
    owner = site.client()
    running, queued = site.submit(owner, githash), site.submit(owner, githash)
    claim = provider.post("/api/pro/services/claims",
                          data={"services": githash, "provider": "ticket-lab", "code": "t"})
    assert claim.data.startswith(f"{running},".encode())
    pro = f"/api/pro/tickets/{running}"
    provider.post(f"{pro}/progress", data={"chunk_start": 0, "chunk_end": 1, "progress": 0.4})
    upload(provider, f"{pro}/attachments", "preview.png", PNG, desc="lung preview",
           mime_type="image/png")
    provider.post(f"{pro}/info", data={"message": "Segmented the <lungs>"})
    upload(provider, f"{pro}/attachments", "report.json", b"{}", desc="report")
    provider.post(f"{pro}/warning", data={"message": "One nodule is small"})
    return site, owner, provider, githash, running, queued


def test_ticket_list_shows_status_progress_and_queue_position(work):
    site, owner, _, _, running, queued = work
    text = page_text(owner.get("/tickets"))
    assert f'href="/tickets/{running}"' in text and f'href="/tickets/{queued}"' in text
    assert '<span class="status claimed">claimed</span>' in text
    assert 'value="0.400"' in text and "40 %" in text
    row = re.search(rf'/tickets/{queued}".*?</tr>', text, re.S).group(0)
    assert '<span class="status ready">ready</span>' in row
    assert re.search(r"<td>\d+</td>", row)  # its queue position
    assert 'data-refresh="5"' in text  # running tickets: the page refreshes itself


def test_ticket_page_shows_the_log_with_inline_images(work):
    _, owner, _, _, running, _ = work
    text = page_text(owner.get(f"/tickets/{running}"))
    assert "Segmented the &lt;lungs&gt;" in text and "One nodule is small" in text
    image = re.search(r'<img src="(/blobs/[0-9a-f]{8})" alt="lung preview">', text)
    assert image, text
    assert owner.get(image.group(1)).data == PNG
    assert re.search(r'<a href="/blobs/[0-9a-f]{8}">attachment</a>', text)


def test_result_files_download_and_retry_after_failure(work):
    _, owner, provider, _, running, _ = work
    pro = f"/api/pro/tickets/{running}"
    upload(provider, f"{pro}/files/results", "lungs.nii.gz", b"segmentation bytes")
    assert provider.post(f"{pro}/status", data={"status": "failed"}).data == b"failed"
    text = page_text(owner.get(f"/tickets/{running}"))
    link = f"/tickets/{running}/files/results/0"
    assert link in text and "lungs.nii.gz" in text
    download = owner.get(link)
    assert download.data == b"segmentation bytes"
    assert 'filename="lungs.nii.gz"' in download.headers["Content-Disposition"]
    assert owner.get(f"/tickets/{running}/files/results/7").status_code == 404
    assert owner.get(f"/tickets/{running}/files/elsewhere/0").status_code == 404
    retried = post_form(owner, f"/tickets/{running}/retry", token_from=f"/tickets/{running}")
    assert retried.status_code == 303
    assert "queued again" in page_text(owner.get(f"/tickets/{running}"))
    assert owner.get(f"/api/tickets/{running}/status").data == b"ready"


def test_an_illegal_retry_is_explained_not_crashed(work):
    _, owner, _, _, _, queued = work
    response = post_form(owner, f"/tickets/{queued}/retry", token_from="/tickets")
    assert response.status_code == 303
    text = page_text(owner.get(f"/tickets/{queued}"))
    assert 'class="flash error"' in text and "Cannot retry" in text
    assert owner.get(f"/api/tickets/{queued}/status").data == b"ready"


def test_delete_removes_the_ticket_from_the_list(work):
    _, owner, _, _, _, queued = work
    response = post_form(owner, f"/tickets/{queued}/delete", token_from="/tickets")
    assert (response.status_code, response.headers["Location"]) == (303, "/tickets")
    assert f'href="/tickets/{queued}"' not in page_text(owner.get("/tickets"))
    assert owner.get(f"/tickets/{queued}").status_code == 404


def test_other_users_tickets_are_not_found(work):
    site, owner, _, _, running, _ = work
    stranger = site.client()
    for path in (f"/tickets/{running}", f"/tickets/{running}/files/input/0"):
        assert stranger.get(path).status_code == 404, path
    for action in ("retry", "delete"):
        response = post_form(stranger, f"/tickets/{running}/{action}", token_from="/tickets")
        assert response.status_code == 404
    assert f"/tickets/{running}" not in page_text(stranger.get("/tickets"))
    assert owner.get(f"/api/tickets/{running}/status").data == b"claimed"
    admin = site.client(admin=True)
    assert admin.get(f"/tickets/{running}").status_code == 200
    assert stranger.get("/tickets/0").status_code == 404
    assert stranger.get("/tickets/99999999999").status_code == 404
