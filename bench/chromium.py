"""The headless Chromium both browser drivers launch (bench/load.py and the browser tests'
tests/e2e/conftest.py) and the Streamlit markers they wait for: one place, no metarec_core.

Playwright's own browser download does not work on our machines: both drive Debian's
Chromium (`make chromium` installs it).
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (containers without user namespaces), no GPU, nothing in the background that
# would compete with the server for the two cores or reach the network.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
# Streamlit's data-testid values (stable: Streamlit's own e2e suite depends on them).
APP_LOADED = "[data-testid='stApp'][data-test-connection-state='CONNECTED']"
SCRIPT_IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def launch_args() -> dict:
    """Playwright's ``browser_type.launch(**launch_args())`` for this Chromium, headless."""
    return {"executable_path": str(CHROMIUM), "headless": True, "args": list(CHROMIUM_ARGS)}
