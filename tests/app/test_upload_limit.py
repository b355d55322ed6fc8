"""The upload limit: Streamlit's and the loader's agree, and the Data page states it."""

from __future__ import annotations

from pathlib import Path

import tomllib

from metarec_core.data.io import DEFAULT_MAX_BYTES

ROOT = Path(__file__).resolve().parents[2]


def test_streamlit_upload_limit_is_the_loaders_cap():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == DEFAULT_MAX_BYTES


def test_data_page_uploader_states_the_limit():
    page = (ROOT / "pages" / "data.py").read_text()
    uploader = page[page.index('"Ratings file"') :]
    uploader = uploader[: uploader.index(")\n")]
    assert "get_option('server.maxUploadSize')" in uploader and " MB" in uploader
