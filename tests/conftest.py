"""Shared fixtures. Each test module keeps its own specific fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
ML100K = SHARED / "ml-100k"
SAMPLE = ROOT / "sample_data"
# Jobs run in their threads here (the app's default is worker processes): AppTest tests replace
# trainings in this process; tests/core/test_job_workers.py makes process pools of its own.
os.environ.setdefault("METAREC_JOB_WORKERS", "thread")


@pytest.fixture(autouse=True)
def workspace_dir(tmp_path, monkeypatch) -> Path:
    """The app's workspaces (metarec_core.workspace) go under the test's own folder."""
    folder = tmp_path / "workspaces"
    monkeypatch.setenv("METAREC_WORKSPACE_DIR", str(folder))
    return folder


@pytest.fixture(autouse=True)
def routed_pages(request, monkeypatch) -> None:
    """AppTest runs as a warm server does: app.py's `st.navigation` routes every page.

    AppTest forgets before every run that `st.navigation` switched off Streamlit's legacy
    `pages/` folder mode; a server forgets only when it starts, and `app_state.require_router`
    covers that first run (tests/app/test_app_home.py tests it with `legacy_first_run`).
    """
    if "legacy_first_run" in request.keywords:
        return
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def routed_init(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", routed_init)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP hand-off costs on a busy 2-core box.

    A module asks for it with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def ml100k_dir() -> Path:
    """The real MovieLens-100K folder; tests using it skip when it is absent (license: not in repo)."""
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens-100K not found at {ML100K} (it is not redistributed with the repo)")
    return ML100K


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture
def small_sample(tmp_path, monkeypatch):
    """Point the app at a tiny sample folder (with a model); clear Streamlit's caches around."""
    from helpers import clear_streamlit_caches, write_sample_dir_with_model

    monkeypatch.setenv("METAREC_SAMPLE_DIR", str(write_sample_dir_with_model(tmp_path / "sample")))
    clear_streamlit_caches()
    yield
    clear_streamlit_caches()


@pytest.fixture
def held(monkeypatch):
    """Trainings the app starts wait until the test releases them (released at the end)."""
    from helpers import HeldTrainings

    made: list[HeldTrainings] = []

    def make(**kw) -> HeldTrainings:
        made.append(HeldTrainings(monkeypatch, **kw))
        return made[-1]

    yield make
    for h in made:
        h.release()
