"""The pages show a service's declared parameters and a ticket's values (issue 15)."""
from __future__ import annotations

import re

from webui_support import page_text, upload

DECLARED = [{"name": "min_score", "type": "float", "default": 0.2, "min": 0, "max": 1,
             "description": "Reporting <threshold>"},
            {"name": "mode", "type": "choice", "choices": ["fast", "accurate"],
             "default": "fast"},
            {"name": "preview", "type": "bool", "default": True},
            {"name": "label", "type": "string", "max_length": 20, "default": "x"}]
WORKSPACE = (b'<registry><folder key="DSS"><folder key="Parameters">'
             b'<entry key="min_score" value="0.35"/></folder></folder></registry>')


def test_service_page_lists_the_declared_parameters(site):
    githash = site.service("ParamPageSvc", parameters=DECLARED)
    text = page_text(site.client().get(f"/services/{githash}"))
    assert ("<tr><td><code>min_score</code></td><td>float</td><td>0.2</td><td>0 to 1</td>"
            "<td>Reporting &lt;threshold&gt;</td></tr>") in text
    assert "<tr><td><code>mode</code></td><td>choice</td><td>fast</td><td>fast, accurate</td>" \
        in text
    assert "<td>bool</td><td>true</td><td>true or false</td>" in text
    assert "<td>string</td><td>x</td><td>at most 20 characters</td>" in text
    plain = page_text(site.client().get(f"/services/{site.service('PlainSvc')}"))
    assert "<h2>Parameters</h2>" not in plain


def test_ticket_pages_show_the_tickets_values_with_defaults(site):
    githash = site.service("ParamTicketSvc", parameters=DECLARED)
    owner = site.client()
    ticket_id = int(owner.post("/api/tickets", data={"githash": githash}).data)
    upload(owner, f"/api/tickets/{ticket_id}/files/input", "ws.itksnap", WORKSPACE)
    assert "<h2>Parameters</h2>" not in page_text(owner.get(f"/tickets/{ticket_id}"))  # init
    assert owner.post(f"/api/tickets/{ticket_id}/status", data={"status": "ready"}).data == b"ready"
    values = ('<dl class="facts parameters"><dt>min_score</dt><dd>0.35</dd><dt>mode</dt>'
              '<dd>fast</dd><dt>preview</dt><dd>true</dd><dt>label</dt><dd>x</dd></dl>')
    assert values in page_text(owner.get(f"/tickets/{ticket_id}"))
    admin = site.client(admin=True)
    assert values in page_text(admin.get(f"/admin/tickets/{ticket_id}"))


def test_scan_names_sizes_and_utc_times_on_the_ticket_pages(site):
    githash = site.service("ScanSvc")
    owner = site.client()
    ticket_id = int(owner.post("/api/tickets", data={"githash": githash}).data)
    upload(owner, f"/api/tickets/{ticket_id}/files/input", "layer_000_ab.nii.gz", b"v" * 1234567)
    upload(owner, f"/api/tickets/{ticket_id}/files/input", "ws.itksnap",
           b'<registry><folder key="DSS"><entry key="ScanName" value="chest &lt;1&gt;.nii"/>'
           b'</folder></registry>')
    owner.post(f"/api/tickets/{ticket_id}/status", data={"status": "ready"})
    page = page_text(owner.get(f"/tickets/{ticket_id}"))
    assert '· scan <span class="scan">chest &lt;1&gt;.nii</span>' in page
    assert "layer_000_ab.nii.gz</a> (1.2 MB)" in page and "ws.itksnap</a> (99 B)" in page
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d UTC</td><td>info</td>", page)
    row = re.search(rf'/tickets/{ticket_id}".*?</tr>', page_text(owner.get("/tickets")),
                    re.S).group(0)
    assert '<td class="scan">chest &lt;1&gt;.nii</td>' in row
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d UTC</td>", row)
    admin = site.client(admin=True)
    listed = page_text(admin.get("/admin/tickets?service=ScanSvc"))
    assert '<td class="scan">chest &lt;1&gt;.nii</td>' in listed
