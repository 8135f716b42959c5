"""Home and about: what this service is and how to connect ITK-SNAP."""
from __future__ import annotations

from flask import render_template, request

from ._web import page_blueprint

bp = page_blueprint("public", __name__)


@bp.get("/")
def home():
    return render_template("home.html", server_url=request.host_url.rstrip("/"))


@bp.get("/about")
def about():
    return render_template("about.html", server_url=request.host_url.rstrip("/"))
