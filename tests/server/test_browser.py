"""The pinned web frontend in headless Chromium against the real server: every bundled workflow opens from the
Templates panel, loads as written, and queues with errors only for the model files this machine does not have.

Needs Debian's chromium + chromium-driver, selenium and the frontend ComfyUI pins (.ci/ui_deps.sh installs all
three). Without them the tests skip with the reason, or fail with it when CI=true. One screenshot per workflow after
it loads and one after it is queued go to $FREEACCEL_ARTIFACTS (default: a folder under pytest's tmp dir; printed).
"""
import json
import os
import re
import shutil
import sys
import time

import pytest

from server_client import bundled_workflows, comfy_version, load_workflow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless, and nothing that phones home: on the closed test network those connections are refused and logged.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1600,1000")
MODEL_FILE_ENDINGS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
UI_TIMEOUT_S = 60
# Console errors the closed test network causes, not the pack: requests to other hosts (refused, or blocked by the
# Content-Security-Policy the server sends, e.g. the Missing Models dialog probing a download URL's size).
# What the frontend logs when POST /prompt answers with validation errors (those are checked one by one below).
QUEUE_REJECTED = (re.compile(r"/api/prompt - Failed to load resource: the server responded with a status of 400"),
                  re.compile(r"PromptExecutionError: Prompt execution failed"))
ENVIRONMENT_ERRORS = (re.compile(r"https?://(?!127\.0\.0\.1[:/])"), re.compile(r'"Error fetching file size:"'))
INSTALL_HINT = "install them with: bash .ci/ui_deps.sh <venv python> <ComfyUI tree>"

# Records every POST /prompt the page makes (the frontend's queue call) with its answer.
RECORD_PROMPT_POSTS = """
if (!window.__freeaccelPromptPosts) {
  window.__freeaccelPromptPosts = [];
  const originalFetch = window.fetch;
  window.fetch = async function (resource, options) {
    const response = await originalFetch.apply(this, arguments);
    const url = String(resource && resource.url ? resource.url : resource);
    if (/\\/prompt(\\?|$)/.test(url) && options && String(options.method).toUpperCase() === 'POST') {
      response.clone().json().then(body => window.__freeaccelPromptPosts.push({status: response.status, body}),
                                   () => window.__freeaccelPromptPosts.push({status: response.status, body: null}));
    }
    return response;
  };
}
"""

VISIBLE_DIALOGS = """
return [...document.querySelectorAll('[role=dialog], .p-dialog')]
  .filter(e => e.offsetParent !== null || getComputedStyle(e).position === 'fixed')
  .map(e => e.innerText.trim()).filter(t => t);
"""

LOADED_GRAPH = """
const graph = window.app.graph;
return {serialized: graph.serialize(),
        unregistered: graph._nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type)};
"""


def in_ci():
    return os.environ.get("CI", "").lower() == "true"


def _unavailable(reason):
    if in_ci():
        pytest.fail(f"browser test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def artifacts(comfy_path, tmp_path_factory):
    root = os.environ.get("FREEACCEL_ARTIFACTS") or str(tmp_path_factory.mktemp("browser_artifacts"))
    folder = os.path.join(root, f"comfyui-{comfy_version(comfy_path)}")
    os.makedirs(folder, exist_ok=True)
    print(f"\nbrowser screenshots: {folder}")
    return folder


@pytest.fixture(scope="session")
def browser(frontend, request, tmp_path_factory):
    static, reason = frontend
    if static is None:
        _unavailable(reason)
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        _unavailable(f"Debian's chromium / chromium-driver not installed ({', '.join(missing)} missing); "
                     f"{INSTALL_HINT}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable(f"selenium is not installed in {sys.executable}'s environment; {INSTALL_HINT}")

    server = request.getfixturevalue("server")  # only once the browser can run: starting ComfyUI takes a while
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_window_size(1600, 1000)
        driver.get(server.url)
        _wait(driver, "return !!(window.app && window.app.graph && window.app.extensionManager"
                      " && window.app.extensionManager.command)", "the frontend's app to start")
        driver.startup_console = driver.get_log("browser")
        yield driver
    finally:
        driver.quit()


def _wait(driver, script, what, *args, timeout=UI_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script, *args)
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _close_dialogs(driver):
    from selenium.webdriver.common.keys import Keys
    for _ in range(4):
        if not driver.execute_script(VISIBLE_DIALOGS):
            return
        driver.find_element("tag name", "body").send_keys(Keys.ESCAPE)
        time.sleep(0.3)


def _open_from_templates_panel(driver, server, name):
    """Open the Templates panel (the frontend's own command), choose the pack under EXTENSIONS, click the card."""
    pack_folder = os.path.basename(server.pack_dir())
    _close_dialogs(driver)
    driver.execute_script("window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    nav = _wait(driver, """
        const dialog = [...document.querySelectorAll('[role=dialog], .p-dialog')].pop();
        if (!dialog) return null;
        const hits = [...dialog.querySelectorAll('*')].filter(e => e.children.length === 0
                                                               && e.innerText && e.innerText.trim() === arguments[0]);
        return hits.length ? hits[hits.length - 1] : null;""", f"'{pack_folder}' in the Templates panel", pack_folder)
    nav.click()
    card = _wait(driver, "return document.querySelector(`[data-testid=\"template-workflow-${arguments[0]}\"]`)",
                 f"the template card of {name}", name)
    driver.execute_script(RECORD_PROMPT_POSTS)
    driver.get_log("browser")  # drop what was logged before: what follows belongs to this workflow
    card.click()


def _widget_differences(file_workflow, loaded):
    loaded_nodes = {str(node["id"]): node for node in loaded["nodes"]}
    differences = []
    for node in file_workflow["nodes"]:
        shown = loaded_nodes.get(str(node["id"]))
        if shown is None:
            differences.append(f"node {node['id']} ({node['type']}) is not in the loaded graph")
        elif shown.get("widgets_values", []) != node.get("widgets_values", []):
            differences.append(f"node {node['id']} ({node['type']}): file {node.get('widgets_values')} -> "
                               f"loaded {shown.get('widgets_values')}")
    return differences


def _validation_errors(answer):
    """[(node type, input, error type, value)] from a POST /prompt answer."""
    body = answer["body"] or {}
    errors = []
    for node_errors in (body.get("node_errors") or {}).values():
        for error in node_errors.get("errors", []):
            extra = error.get("extra_info", {})
            errors.append((node_errors.get("class_type"), extra.get("input_name"), error.get("type"),
                           extra.get("received_value")))
    if not errors and answer["status"] != 200:
        errors.append((None, None, (body.get("error") or {}).get("type"), json.dumps(body)[:500]))
    return errors


def _is_missing_model_file(error):
    _, _, kind, value = error
    return kind == "value_not_in_list" and isinstance(value, str) and value.lower().endswith(MODEL_FILE_ENDINGS)


@pytest.mark.parametrize("name", bundled_workflows())
def test_bundled_workflow_opens_and_queues(browser, server, artifacts, name):
    driver = browser
    file_workflow = load_workflow(name)
    expected_ids = sorted(str(node["id"]) for node in file_workflow["nodes"])  # newer frontends use string ids
    try:
        _open_from_templates_panel(driver, server, name)
        _wait(driver, "return JSON.stringify(window.app.graph._nodes.map(n => String(n.id)).sort())"
                      " === arguments[0]", f"{name}'s nodes in the graph",
              json.dumps(expected_ids, separators=(",", ":")))
    except AssertionError:
        driver.save_screenshot(os.path.join(artifacts, f"{name}-not-loaded.png"))
        raise
    time.sleep(1.5)  # dialogs the load opens (missing nodes, missing models) appear after the graph
    dialogs = driver.execute_script(VISIBLE_DIALOGS)
    graph = driver.execute_script(LOADED_GRAPH)
    console = driver.get_log("browser")
    driver.save_screenshot(os.path.join(artifacts, f"{name}-loaded.png"))

    _close_dialogs(driver)
    driver.execute_script("window.app.extensionManager.command.execute('Comfy.QueuePrompt')")
    answer = _wait(driver, "return (window.__freeaccelPromptPosts || []).shift()", f"{name}'s POST /prompt")
    time.sleep(1)
    driver.save_screenshot(os.path.join(artifacts, f"{name}-queued.png"))
    queue_console = driver.get_log("browser")
    _close_dialogs(driver)

    problems = []
    if graph["unregistered"]:
        problems.append(f"node types the frontend does not know: {graph['unregistered']}")
    problems += [f"dialog on load: {text[:300]!r}" for text in dialogs if "missing" in text.lower()
                 and "node" in text.lower() and "model" not in text.lower()]
    problems += _widget_differences(file_workflow, graph["serialized"])
    console_errors = [entry["message"] for entry in console if entry["level"] == "SEVERE"]
    console_errors += [entry["message"] for entry in queue_console if entry["level"] == "SEVERE"
                       and not (answer["status"] == 400 and any(p.search(entry["message"]) for p in QUEUE_REJECTED))]
    environment = [message for message in console_errors if any(p.search(message) for p in ENVIRONMENT_ERRORS)]
    problems += [f"console error: {message[:400]}" for message in console_errors if message not in environment]
    errors = _validation_errors(answer)
    problems += [f"queue error other than a missing model file: {error}" for error in errors
                 if not _is_missing_model_file(error)]
    print(f"{name}: {len(environment)} console errors from the closed network; dialogs {[text[:80] for text in dialogs]}; queue answered {answer['status']} with "
          f"{len(errors)} errors ({sum(map(_is_missing_model_file, errors))} missing model files)")
    assert not problems, f"{name} in the browser:\n" + "\n".join(problems)
