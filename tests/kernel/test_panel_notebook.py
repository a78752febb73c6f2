"""No token in a saved notebook: a real kernel runs login(), signs in through the panel's kernel half with a
PAT (as the comm would deliver it), prints the client and a failed login's message; the notebook is saved with
widget state, and neither the token nor its last 8 characters may appear anywhere in the file."""

from __future__ import annotations

import json
import os

import nbformat
from nbclient import NotebookClient
from support import REPO, TESTS
from support.memory_keyring import BACKEND

CELLS = [
    # The emulator's address and the token come from the kernel's environment, never from a cell's source.
    "import os\nfrom speckle_nb_auth import login\npanel = login(server=os.environ['EMU_URL'], wait=False)\npanel",
    "message = {'type': 'pat', 'server': os.environ['EMU_URL'], 'token': os.environ['EMU_PAT']}\n"
    "panel._handle_custom_msg(message, [])",
    "print(speckle.user.name)\nprint(repr(speckle))\nprint(panel.status, panel.message, panel.error)",
    "speckle",
    # A failed login while signed in: a wrong token, then the real token with one character changed.
    "panel._handle_custom_msg({'type': 'pat', 'server': os.environ['EMU_URL'], 'token': 'f' * 42}, [])\n"
    "print(panel.error)\n"
    "bad = os.environ['EMU_PAT'][:-1] + ('0' if os.environ['EMU_PAT'][-1] != '0' else '1')\n"
    "panel._handle_custom_msg({'type': 'pat', 'server': os.environ['EMU_URL'], 'token': bad}, [])\n"
    "print(panel.error)",
    "from speckle_nb_auth import get_client\nget_client()",
    "panel",
    "%load_ext speckle_nb_auth\nEMU = os.environ['EMU_URL']\n%speckle_login $EMU --name sp2",
]


def test_saved_notebook_holds_no_token(emulator, tmp_path):
    pat = emulator.credentials["pat"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    env = {
        **os.environ,
        "EMU_URL": emulator.url,
        "EMU_PAT": pat,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "PYTHON_KEYRING_BACKEND": BACKEND,
    }
    client = NotebookClient(nb, kernel_name="python3", store_widget_state=True, timeout=60)
    client.execute(env=env, cwd=str(tmp_path))
    path = tmp_path / "signed-in.ipynb"
    nbformat.write(nb, path)
    text = path.read_text(encoding="utf-8")

    # the cells ran: the user's name is printed, and the widget state was saved
    assert "Ada Lovelace" in text
    printed = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert printed.startswith("Ada Lovelace\n<speckle_nb_auth.Client user='Ada Lovelace'")
    assert "signed_in" in printed
    failures = "".join(o.get("text", "") for o in nb.cells[4].outputs)
    assert failures.count("still signed in as Ada Lovelace") == 2
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    panels = {m["state"]["variable"]: m["state"] for m in state.values()
              if m["state"].get("_anywidget_id", "").endswith("LoginPanel")}
    assert panels["speckle"]["status"] == "signed_in" and panels["speckle"]["user_name"] == "Ada Lovelace"
    assert panels["sp2"]["status"] == "signed_in"  # every panel of a kernel shows its one sign-in

    # the magic shows one more panel, once
    view = "application/vnd.jupyter.widget-view+json"
    views = [o for o in nb.cells[7].outputs if view in o.get("data", {})]
    assert len(views) == 1

    # and no secret is anywhere in the file, whole or in part
    assert pat not in text
    assert pat[-8:] not in text
    assert pat[:10] not in text  # a token's id is half of it
    assert json.loads(text)  # a valid notebook
