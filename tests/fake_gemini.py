#!/usr/bin/env python3
"""fake_gemini.py: a stand-in for Google's `gemini` CLI (@google/gemini-cli 0.61.0) in tests.

Standalone, stdlib only.  Install it as an executable named `gemini` (or point
IMS_GEMINI_BIN at it).  It accepts the real argv (`-m MODEL -p PROMPT -o json [args...]`),
reads piped stdin the way the real CLI does, and prints what the real CLI printed in the
captures under captures/ (see REPORT.md): same exit codes, same stdout (pretty JSON, no
trailing newline), same stderr shape (warning lines, retry lines, a Node stack trace, then
the JSON error object).

Scenario: FAKE_GEMINI_SCENARIO (default "success").  Either one name for every model, or a
per-model map "gemini-2.5-flash-lite=quota_day,gemini-2.5-flash=overload,*=success" (a key
matches the -m value or the model the real CLI would actually call, e.g. "pro" ->
gemini-3.1-pro-preview).

 scenario                  exit stdout  stderr (last block = JSON error)             attempts  real capture
 ------------------------- ---- ------- -------------------------------------------- --------  ---------------------------
 success                   0    JSON    warnings only                                1         a_success
 quota_minute              173  empty   API message + "\nSuggested retry after 7s."  10 (~265s) b_quota_minute
 quota_minute_noretryinfo  173  empty   API message + "\nSuggested retry after 60s." 10 (~600s) b4_..._maxAttempts2, b3
 quota_day                 173  empty   "You have exhausted your daily quota on ..."  1         c1_quota_day
 quota_mixed               173  empty   same as quota_day (any PerDay violation wins) 1         c2_quota_mixed
 quota_limit0              173  empty   raw API message ("... limit: 0 ...")          1         c3_quota_limit0
 overload                  247  empty   "The model is overloaded. Please try again later." code 503  10 (~230s) d_overload
 internal                  244  empty   raw API error JSON as a string, code 500      10 (~240s) e_internal
 not_found                 1    empty   "models/M is not found for API version v1beta, ..." code 1  1  f_not_found, f2
 bad_key                   144  empty   raw API error JSON (API_KEY_INVALID), code 400 1         g_bad_key
 denied                    147  empty   raw API error JSON (PERMISSION_DENIED), code 403 1       h_denied
 unauthenticated           145  empty   raw API error JSON (UNAUTHENTICATED), code 401 1         h2_unauthenticated_401
 overflow                  144  empty   raw API error JSON ("input token count ..."), 400 1      i_overflow
 conn_refused              1    empty   "exception TypeError: fetch failed sending request" code 1  10 (~215s) j1_conn_refused
 timeout                   1    empty   same JSON as conn_refused (60 s header timeout/attempt)  10 (~815s) j2_hang, j3_hang_maxAttempts2
 stall_body                1    empty   "terminated" code 1 (300 s body timeout)      1*        j4_stall_body_maxAttempts1
 untrusted                 55   empty   red plain-text trust message, NO JSON         0         k1_untrusted (k2: NO_COLOR)
 bad_settings              52   empty   red "Error in ~/.gemini/settings.json: ..."   0         k8_bad_settings_json
 bad_trusted_folders       52   empty   red "Error in ~/.gemini/trustedFolders.json: ..." 0     k7_bad_trustedFolders_json
 no_auth                   41   empty   JSON only: "Please set an Auth method in your ~/.gemini/settings.json ..."  0  l1
 no_key                    41   empty   JSON only: "When using Gemini API, you must specify the GEMINI_API_KEY ..."  0  l2
 gateway_auth              41   empty   JSON only: "Invalid auth method selected."   0         l3 (GOOGLE_GEMINI_BASE_URL w/o selectedType)
 recover:N (or fail_then_ok:N)  0  JSON N x 503 retry lines; stats api.totalErrors=N  N+1       o1_recover_after_2x503
 (argv errors, any scenario)
   unknown flag            1    empty   "Unknown argument(s): ..." + help             0         m1_invalid_flag, m8_*
   -o xml                  1    empty   "Invalid values: ..." + help                  0         m3_bad_output_format
   -p / -m without value   1    empty   "Not enough arguments following: p" + help    0         m5_p_without_value, m8
   -p "" and no stdin      42   empty   warnings + "No input provided via stdin. ..." 0         m4_empty_prompt
   -m "" / -m auto / no -m 0    JSON    auto routing: stats name 2 models (utility_router + main)  m2_empty_model, m6, n4
   --version               0    "0.61.0\n"                                                      (manual)
 (*) stall_body with the default maxAttempts makes up to 4 mid-stream attempts (not emulated: one).
 "hang" is accepted as another name for "timeout".

Also reproduced (any scenario):
 - model rewrites the real CLI makes with an API key (captures n2, n7, r_alias_*): pro and
   gemini-3-pro-preview -> gemini-3.1-pro-preview; flash and gemini-3.5-flash -> gemini-3.8-flash;
   flash-lite and gemini-3.1-flash-lite -> gemini-3.5-flash-lite; other names are sent verbatim.
   The stats key is the rewritten name.
 - the silent fallback of -m gemini-3.1-flash-lite / flash-lite to gemini-3.8-flash after a
   terminal (quota_day/mixed/limit0, not_found) or retried-out failure: exit 0 and two models in
   stats, the failed one with zero tokens and api.totalErrors > 0 (n5); if both fail, the second
   model's error (n6).  No other model falls back by itself in headless mode (n1, n3, n8).
 - stdin: read when not a TTY and data arrives within 500 ms; prompt sent as "STDIN\n\nPROMPT"
   (p1); stdin alone works without -p (p2).  -o text: the bare response + newline (p3); an API
   error in text mode prints "An unexpected critical error occurred:[object Object]", exit 1 (p4).
 - -p given twice: JSON error type "TypeError" "query.startsWith is not a function", exit 1 (m8);
   a prompt starting with "- " is not taken as -p's value (exit 1), "-5 ..." is (m9).
 - SIGTERM/SIGINT to the process group: exit 0, empty stdout (q_signals).

The real CLI retries by itself (general.maxAttempts, default 10, read here from
$GEMINI_CLI_HOME or $HOME /.gemini/settings.json too).  By default the fake prints the retry
lines without waiting; FAKE_GEMINI_RETRY_TIME_SCALE=1 sleeps the real schedule
(5 s doubling to 30 s with +-30 % jitter; a RetryInfo delay as a floor with +0-20 %),
0.01 a hundredth of it.  Timeouts (scenario timeout) cost 60 s per attempt times the scale.

Other environment:
  FAKE_GEMINI_SLEEP_S      sleep this long before "calling the API" (for caller timeouts)
  FAKE_GEMINI_RESPONSE     the response text (default "Hello from the fake gemini.")
  FAKE_GEMINI_PROMPT_TOKENS / FAKE_GEMINI_THOUGHTS_TOKENS  override the token estimates
  FAKE_GEMINI_LOG          append one JSON line per run: argv, stdin, cwd, scenario, exit
  FAKE_GEMINI_NOISE=0      drop the warning lines ("Warning: 256-color ...", "Ripgrep ...")
  FAKE_GEMINI_CHECK_TRUST=1  decide folder trust like the real CLI (GEMINI_CLI_TRUST_WORKSPACE,
                           --skip-trust, security.folderTrust.enabled, trustedFolders.json)
  FAKE_GEMINI_CHECK_AUTH=1 decide auth like the real CLI (GEMINI_API_KEY, selectedType,
                           GOOGLE_GEMINI_BASE_URL)
  GEMINI_CLI_NO_RELAUNCH   as in the real CLI: without it the fake runs itself as a child and
                           the parent ignores SIGINT/SIGTERM/SIGHUP (so terminating only the
                           parent pid does nothing; kill the process group).  SIGTERM/SIGINT
                           reaching the worker: exit 0 with nothing on stdout, like the real one.
  NO_COLOR                 plain (not red) untrusted-folder message, like the real one.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid

VERSION = "0.61.0"
BUNDLE = os.environ.get("FAKE_GEMINI_BUNDLE_DIR", "/usr/local/lib/node_modules/@google/gemini-cli/bundle")
HELP = 'Usage: gemini [options] [command]\n\nGemini CLI - Defaults to interactive mode. Use -p/--prompt for non-interactive (headless) mode.\n\nCommands:\n  gemini mcp                   Manage MCP servers\n  gemini extensions <command>  Manage Gemini CLI extensions.  [aliases: extension]\n  gemini skills <command>      Manage agent skills.  [aliases: skill]\n  gemini hooks <command>       Manage Gemini CLI hooks.  [aliases: hook]\n  gemini gemma                 Manage local Gemma model routing\n  gemini [query..]             Launch Gemini CLI  [default]\n\nPositionals:\n  query  Initial prompt. Runs in interactive mode by default; use -p/--prompt for non-interactive.\n\nOptions:\n  -d, --debug                     Run in debug mode (open debug console with F12)  [boolean] [default: false]\n  -m, --model                     Model  [string]\n  -p, --prompt                    Run in non-interactive (headless) mode with the given prompt. Appended to input on stdin (if any).  [string]\n  -i, --prompt-interactive        Execute the provided prompt and continue in interactive mode  [string]\n      --skip-trust                Trust the current workspace for this session.  [boolean] [default: false]\n  -w, --worktree                  Start Gemini in a new git worktree. If no name is provided, one is generated automatically.  [string]\n  -s, --sandbox                   Run in sandbox?  [boolean]\n  -y, --yolo                      Automatically accept all actions (aka YOLO mode, see https://www.youtube.com/watch?v=xvFZjo5PgG0 for more details)?  [boolean] [default: false]\n      --approval-mode             Set the approval mode: default (prompt for approval), auto_edit (auto-approve edit tools), yolo (auto-approve all tools), plan (read-only mode)  [string] [choices: "default", "auto_edit", "yolo", "plan"]\n      --policy                    Additional policy files or directories to load (comma-separated or multiple --policy)  [array]\n      --admin-policy              Additional admin policy files or directories to load (comma-separated or multiple --admin-policy)  [array]\n      --acp                       Starts the agent in ACP mode  [boolean]\n      --experimental-acp          Starts the agent in ACP mode (deprecated, use --acp instead)  [boolean]\n      --allowed-mcp-server-names  Allowed MCP server names  [array]\n      --allowed-tools             [DEPRECATED: Use Policy Engine instead See https://geminicli.com/docs/core/policy-engine] Tools that are allowed to run without confirmation  [array]\n  -e, --extensions                A list of extensions to use. If not provided, all extensions are used.  [array]\n  -l, --list-extensions           List all available extensions and exit.  [boolean]\n  -r, --resume                    Resume a previous session. Use "latest" for most recent or index number (e.g. --resume 5)  [string]\n      --session-file              Load a session from a JSON file  [string]\n      --session-id                Start a new session with a manually provided UUID.  [string]\n      --list-sessions             List available sessions for the current project and exit.  [boolean]\n      --delete-session            Delete a session by index number (use --list-sessions to see available sessions).  [string]\n      --include-directories       Additional directories to include in the workspace (comma-separated or multiple --include-directories)  [array]\n      --screen-reader             Enable screen reader mode for accessibility.  [boolean]\n  -o, --output-format             The format of the CLI output.  [string] [choices: "text", "json", "stream-json"]\n      --raw-output                Disable sanitization of model output (e.g. allow ANSI escape sequences). WARNING: This can be a security risk if the model output is untrusted.  [boolean]\n      --accept-raw-output-risk    Suppress the security warning when using --raw-output.  [boolean]\n  -v, --version                   Show version number  [boolean]\n  -h, --help                      Show help  [boolean]\n'

# -- argv (yargs as configured by packages/cli/src/config/config.ts) -----------------------
VALUE_OPTS = {  # name -> alias; nargs 1
    "model": "m", "prompt": "p", "prompt-interactive": "i", "approval-mode": None,
    "policy": None, "admin-policy": None, "allowed-mcp-server-names": None, "allowed-tools": None,
    "extensions": "e", "session-file": None, "session-id": None, "include-directories": None,
    "output-format": "o", "fake-responses": None, "fake-responses-non-strict": None,
    "record-responses": None,
}
OPTIONAL_VALUE_OPTS = {"worktree": "w", "resume": "r", "delete-session": None}
BOOL_OPTS = {
    "debug": "d", "skip-trust": None, "sandbox": "s", "yolo": "y", "acp": None,
    "experimental-acp": None, "list-extensions": "l", "list-sessions": None,
    "screen-reader": None, "raw-output": None, "accept-raw-output-risk": None,
    "version": "v", "help": "h",
}
ARRAY_OPTS = {"policy", "admin-policy", "allowed-mcp-server-names", "allowed-tools", "extensions",
              "include-directories"}
SHORT = {a: n for d in (VALUE_OPTS, OPTIONAL_VALUE_OPTS, BOOL_OPTS) for n, a in d.items() if a}


KNOWN = {"success", "quota_minute", "quota_minute_noretryinfo", "quota_day", "quota_mixed", "quota_limit0",
         "overload", "internal", "not_found", "bad_key", "denied", "unauthenticated", "overflow",
         "conn_refused", "timeout", "hang", "stall_body", "untrusted", "bad_settings",
         "bad_trusted_folders", "no_auth", "no_key", "gateway_auth", "recover", "fail_then_ok"}


class ArgError(Exception):
    pass


def camel(name: str) -> str:
    head, *rest = name.split("-")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def parse_argv(argv: list[str]) -> dict:
    opts: dict = {"query": []}
    unknown: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            opts["query"].extend(argv[i + 1:])
            break
        if a.startswith("--") or (a.startswith("-") and len(a) > 1 and not a[1:].replace(".", "").isdigit()):
            inline = None
            if a.startswith("--"):
                name = a[2:]
                if "=" in name:
                    name, inline = name.split("=", 1)
                if name.startswith("no-") and name[3:] in BOOL_OPTS:
                    opts[name[3:]] = False
                    i += 1
                    continue
            else:
                key = a[1:2]
                name = SHORT.get(key)
                if len(a) > 2:
                    inline = a[2:]
                if name is None:
                    unknown.append(key)
                    i += 1
                    continue
            if name in BOOL_OPTS:
                opts[name] = True if inline is None else inline not in ("false", "0")
            elif name in VALUE_OPTS or name in OPTIONAL_VALUE_OPTS:
                if inline is not None:
                    val = inline
                elif i + 1 < len(argv) and not (argv[i + 1].startswith("-") and argv[i + 1] != "-"
                                                 and not argv[i + 1][1:2].isdigit()):
                    val = argv[i + 1]
                    i += 1
                elif name in OPTIONAL_VALUE_OPTS:
                    val = ""
                else:
                    raise ArgError(f"Not enough arguments following: {SHORT_OF.get(name) or name}")
                if name in ARRAY_OPTS:
                    opts.setdefault(name, []).append(val)
                elif name in opts:  # yargs turns a repeated string option into an array
                    prev = opts[name]
                    opts[name] = (prev if isinstance(prev, list) else [prev]) + [val]
                else:
                    opts[name] = val
            else:
                unknown.extend([name, camel(name)] if "-" in name else [name])
        else:
            opts["query"].append(a)
        i += 1
    if unknown:
        label = "Unknown argument" if len(unknown) == 1 else "Unknown arguments"
        raise ArgError(f"{label}: {', '.join(unknown)}")
    if opts.get("prompt") and opts["query"]:
        raise ArgError("Cannot use both a positional prompt and the --prompt (-p) flag together")
    if opts.get("prompt") and opts.get("prompt-interactive"):
        raise ArgError("Cannot use both --prompt (-p) and --prompt-interactive (-i) together")
    if opts.get("yolo") and opts.get("approval-mode"):
        raise ArgError("Cannot use both --yolo (-y) and --approval-mode together. Use --approval-mode=yolo instead.")
    fmt = opts.get("output-format")
    if isinstance(fmt, str) and fmt not in ("text", "json", "stream-json"):
        raise ArgError('Invalid values:\n  Argument: output-format, Given: "%s", Choices: "text", "json", "stream-json"' % fmt)
    return opts


SHORT_OF = {n: a for a, n in SHORT.items()}

# -- models: what the real CLI actually calls for a -m value (API-key auth, captures r_alias_*)
REWRITE = {
    "pro": "gemini-3.1-pro-preview", "gemini-3-pro-preview": "gemini-3.1-pro-preview",
    "auto-gemini-3": "gemini-3.1-pro-preview", "auto-gemini-2.5": "gemini-2.5-pro",
    "flash": "gemini-3.8-flash", "gemini-3.5-flash": "gemini-3.8-flash",
    "flash-lite": "gemini-3.5-flash-lite", "gemini-3.1-flash-lite": "gemini-3.5-flash-lite",
}
AUTO = {"", "auto"}
ROUTER_MODEL, AUTO_MAIN = "gemini-3.5-flash-lite", os.environ.get("FAKE_GEMINI_AUTO_MAIN", "gemini-3.8-flash")
# silent fallback chains the real CLI applies in headless mode (policyCatalog.js)
SILENT_CHAIN = {"gemini-3.1-flash-lite": ["gemini-3.8-flash"], "flash-lite": ["gemini-3.8-flash"]}

# -- the error catalogue --------------------------------------------------------------------
QUOTA_HEAD = ("You exceeded your current quota, please check your plan and billing details. For more "
              "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
              "To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. ")


def _qline(metric, limit, model):
    return f"\n* Quota exceeded for metric: generativelanguage.googleapis.com/{metric}, limit: {limit}, model: {model}"


def api_message(scenario: str, model: str) -> str:
    if scenario == "quota_minute":
        return QUOTA_HEAD + _qline("generate_content_free_tier_requests", 10, model) + "\nPlease retry in 7.315146517s."
    if scenario == "quota_minute_noretryinfo":
        return QUOTA_HEAD + _qline("generate_content_free_tier_requests", 10, model)
    if scenario == "quota_day":
        return QUOTA_HEAD + _qline("generate_content_free_tier_requests", 250, model) + "\nPlease retry in 43.912601s."
    if scenario == "quota_mixed":
        return (QUOTA_HEAD + _qline("generate_content_free_tier_input_token_count", 250000, model)
                + _qline("generate_content_free_tier_requests", 10, model)
                + _qline("generate_content_free_tier_requests", 250, model) + "\nPlease retry in 7.315146517s.")
    if scenario == "quota_limit0":
        return (QUOTA_HEAD + _qline("generate_content_free_tier_input_token_count", 0, model)
                + _qline("generate_content_free_tier_requests", 0, model)
                + _qline("generate_content_free_tier_requests", 0, model) + "\nPlease retry in 11.767792953s.")
    raise KeyError(scenario)


RAW = {  # the API's error body as the SDK's ApiError message (JSON on one line)
    "overload": {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}},
    "internal": {"error": {"code": 500, "message": "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting", "status": "INTERNAL"}},
    "bad_key": {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT", "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": "API key not valid. Please pass a valid API key."}]}},
    "denied": {"error": {"code": 403, "message": "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", "status": "PERMISSION_DENIED", "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED", "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}},
    "unauthenticated": {"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.", "status": "UNAUTHENTICATED"}},
    "overflow": {"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}},
}
TRUST_MSG = ("Gemini CLI is not running in a trusted directory. To proceed, either use `--skip-trust`, set the "
             "`GEMINI_CLI_TRUST_WORKSPACE=true` environment variable, or trust this directory in interactive "
             "mode. For more details, see https://geminicli.com/docs/cli/trusted-folders/#headless-and-automated-environments")
FETCH_MSG = "exception TypeError: fetch failed sending request"
NO_INPUT = "No input provided via stdin. Input can be provided by piping data into gemini or using the --prompt option."

F = "file://" + BUNDLE
FR_API = [f"    at throwErrorIfNotOK ({F}/chunk-JDPZ4CE3.js:267833:24)",
          "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
          f"    at async {F}/chunk-JDPZ4CE3.js:267596:7",
          f"    at async Models.generateContentStream ({F}/chunk-JDPZ4CE3.js:268692:16)",
          f"    at async {F}/chunk-JDPZ4CE3.js:311457:19",
          f"    at async {F}/chunk-JDPZ4CE3.js:288018:23",
          f"    at async retryWithBackoff ({F}/chunk-JDPZ4CE3.js:308039:23)",
          f"    at async GeminiChat.makeApiCallAndProcessStream ({F}/chunk-JDPZ4CE3.js:332326:28)",
          f"    at async GeminiChat.streamWithRetries ({F}/chunk-JDPZ4CE3.js:332079:29)",
          f"    at async Turn.run ({F}/chunk-JDPZ4CE3.js:333001:24) {{"]
FR_FETCH = [f"    at {F}/chunk-JDPZ4CE3.js:267671:13"] + FR_API[1:2] + FR_API[3:9] + [
    f"    at async Turn.run ({F}/chunk-JDPZ4CE3.js:333001:24)",
    f"    at async GeminiClient.processTurn ({F}/chunk-JDPZ4CE3.js:346675:22)"]
# a header timeout (server accepts, never answers) has no processTicksAndRejections frame
FR_TIMEOUT = [FR_FETCH[0]] + FR_FETCH[2:] + [
    f"    at async GeminiClient.sendMessageStream ({F}/chunk-JDPZ4CE3.js:346772:14)"]


def fr_classify(line: str) -> list[str]:
    return [f"    at classifyGoogleError ({F}/chunk-JDPZ4CE3.js:{line})",
            f"    at retryWithBackoff ({F}/chunk-JDPZ4CE3.js:308062:29)",
            "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
            f"    at async GeminiChat.makeApiCallAndProcessStream ({F}/chunk-JDPZ4CE3.js:332326:28)",
            f"    at async GeminiChat.streamWithRetries ({F}/chunk-JDPZ4CE3.js:332079:29)",
            f"    at async Turn.run ({F}/chunk-JDPZ4CE3.js:333001:24)",
            f"    at async GeminiClient.processTurn ({F}/chunk-JDPZ4CE3.js:346675:22)",
            f"    at async GeminiClient.sendMessageStream ({F}/chunk-JDPZ4CE3.js:346772:14)",
            f"    at async {F}/gemini-3HFX2LNT.js:12198:26",
            f"    at async main ({F}/gemini-3HFX2LNT.js:17627:5) {{"]


def inspect_str(s: str, indent: str) -> str:
    """A string as Node's util.inspect prints it inside an object (multi-line: 'a\\n' + ...)."""
    def q(part):
        return "'" + part.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    parts = s.split("\n")
    if len(parts) == 1:
        return q(s)
    pieces = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    return (" +\n" + indent + "  ").join(q(p) for p in pieces)


def report_line(cls_msg: str) -> str:
    ts = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S-%f")[:-3] + "Z"
    tmp = os.environ.get("TMPDIR", "/tmp").rstrip("/") or "/tmp"
    return f"Error when talking to Gemini API Full report available at: {tmp}/gemini-client-error-Turn.run-sendMessageStream-{ts}.json {cls_msg}"


class Failure:
    """What the real CLI prints for one API failure, and how it retries."""

    def __init__(self, scenario: str, model: str):
        self.scenario, self.model = scenario, model
        self.retry_delay = None  # RetryInfo floor, seconds
        if scenario in ("quota_minute", "quota_minute_noretryinfo"):
            self.kind, self.status, self.exit = "retryable_quota", 429, 173
            self.api = api_message(scenario, model)
            self.retry_delay = 7 if scenario == "quota_minute" else 60
            self.message = self.api + f"\nSuggested retry after {self.retry_delay}s."
            self.code = 429
        elif scenario in ("quota_day", "quota_mixed", "quota_limit0"):
            self.kind, self.status, self.exit, self.code = "terminal", 429, 173, 429
            self.api = api_message(scenario, model)
            self.message = self.api if scenario == "quota_limit0" else "You have exhausted your daily quota on this model."
        elif scenario == "overload":
            self.kind, self.status, self.exit, self.code = "retry_5xx_quota", 503, 247, 503
            self.api = RAW[scenario]["error"]["message"]
            self.message = self.api
        elif scenario == "internal":
            self.kind, self.status, self.exit, self.code = "retry_5xx", 500, 244, 500
            self.api = json.dumps(RAW[scenario], separators=(",", ":"))
            self.message = self.api
        elif scenario in ("bad_key", "denied", "unauthenticated", "overflow"):
            self.kind = "fatal_api"
            self.status = self.code = RAW[scenario]["error"]["code"]
            self.exit = self.status & 0xFF
            self.api = self.message = json.dumps(RAW[scenario], separators=(",", ":"), ensure_ascii=False)
        elif scenario == "not_found":
            self.kind, self.status, self.exit, self.code = "not_found", 404, 1, 1
            self.message = (f"models/{model} is not found for API version v1beta, or is not supported for "
                            "generateContent. Call ListModels to see the list of available models and their supported methods.")
        elif scenario in ("conn_refused", "timeout"):
            self.kind, self.status, self.exit, self.code = "fetch", None, 1, 1
            self.message = FETCH_MSG
        elif scenario == "stall_body":
            self.kind, self.status, self.exit, self.code = "stall", None, 1, 1
            self.message = "terminated"
        else:
            raise KeyError(scenario)

    @property
    def fetch_frames(self) -> list[str]:
        return FR_TIMEOUT if self.scenario == "timeout" else FR_FETCH

    @property
    def retries(self) -> bool:
        return self.kind in ("retryable_quota", "retry_5xx_quota", "retry_5xx", "fetch")

    def attempt_block(self, attempt: int, delay_ms: float) -> str:
        if self.kind == "retryable_quota":
            return f"Attempt {attempt} failed: {self.message}. Retrying after {round(delay_ms)}ms...\n"
        if self.kind in ("retry_5xx_quota", "retry_5xx"):
            raw = json.dumps(RAW[self.scenario], separators=(",", ":"))
            return (f"Attempt {attempt} failed with status {self.status}. Retrying with backoff... _ApiError: {raw}\n"
                    + "\n".join(FR_API) + f"\n  status: {self.status}\n}}\n")
        if self.kind == "fetch":
            return f"Attempt {attempt} failed. Retrying with backoff... Error: {FETCH_MSG}\n" + "\n".join(self.fetch_frames) + "\n"
        return ""

    def final_block(self, attempt: int) -> str:
        out = ""
        if self.kind in ("retryable_quota", "retry_5xx_quota", "retry_5xx"):
            out += f"Attempt {attempt} failed: {self.message}. Max attempts reached\n"
        if self.kind == "retryable_quota":
            line = "307385:12" if self.scenario == "quota_minute" else "307392:16"
            out += report_line(f"RetryableQuotaError: {self.message}") + "\n" + "\n".join(fr_classify(line)) + "\n"
            ndet = 3 if self.scenario == "quota_minute" else 2
            out += ("  cause: {\n    code: 429,\n    message: " + inspect_str(self.api, "    ") + ",\n"
                    f"    details: [ {', '.join(['[Object]'] * ndet)} ]\n  }},\n"
                    f"  retryDelayMs: {self.retry_delay * 1000},\n  status: 429\n}}\n")
        elif self.kind == "terminal":
            line = "307307:12" if self.scenario == "quota_limit0" else "307344:16"
            out += report_line(f"TerminalQuotaError: {self.message}") + "\n" + "\n".join(fr_classify(line)) + "\n"
            out += ("  cause: {\n    code: 429,\n    message: " + inspect_str(self.api, "    ") + ",\n"
                    "    details: [ [Object], [Object], [Object] ]\n  },\n"
                    "  retryDelayMs: undefined,\n  reason: undefined,\n  status: 429\n}\n")
        elif self.kind == "retry_5xx_quota":
            out += report_line(f"RetryableQuotaError: {self.message}") + "\n" + "\n".join(fr_classify("307333:14")) + "\n"
            out += ("  cause: {\n    code: 503,\n    message: " + inspect_str(self.api, "    ") + ",\n"
                    "    details: []\n  },\n  retryDelayMs: undefined,\n  status: 503\n}\n")
        elif self.kind in ("retry_5xx", "fatal_api"):
            raw = json.dumps(RAW[self.scenario], separators=(",", ":"), ensure_ascii=False)
            out += report_line(f"_ApiError: {raw}") + "\n" + "\n".join(FR_API) + f"\n  status: {self.status}\n}}\n"
        elif self.kind == "not_found":
            out += report_line(f"ModelNotFoundError: {self.message}") + "\n" + "\n".join(fr_classify("307292:12")) + "\n  code: 404\n}\n"
        elif self.kind == "fetch":
            out += report_line(f"Error: {FETCH_MSG}") + "\n" + "\n".join(self.fetch_frames) + "\n"
        elif self.kind == "stall":
            out += report_line("TypeError: terminated") + "\n" + "\n".join([
                "    at Fetch.onAborted (node:internal/deps/undici/undici:11350:53)",
                "    at Fetch.emit (node:events:524:28)",
                "    at Fetch.terminate (node:internal/deps/undici/undici:10508:14)",
                "    at Object.onError (node:internal/deps/undici/undici:11473:38)",
                f"    at Request.onError ({F}/chunk-JDPZ4CE3.js:211613:31)",
                f"    at Object.errorRequest ({F}/chunk-JDPZ4CE3.js:211020:17)",
                f"    at Socket.onHttpSocketClose ({F}/chunk-JDPZ4CE3.js:216234:15)",
                "    at Socket.emit (node:events:536:35)",
                "    at TCP.<anonymous> (node:net:343:12)",
                "    at TCP.callbackTrampoline (node:internal/async_hooks:130:17) {",
                "  [cause]: BodyTimeoutError: Body Timeout Error",
                f"      at FastTimer.onParserTimeout [as _onTimeout] ({F}/chunk-JDPZ4CE3.js:216106:33)",
                f"      at Timeout.onTick [as _onTimeout] ({F}/chunk-JDPZ4CE3.js:209874:17)",
                "      at listOnTimeout (node:internal/timers:581:17)",
                "      at process.processTimers (node:internal/timers:519:7) {",
                "    code: 'UND_ERR_BODY_TIMEOUT'",
                "  }",
                "}"]) + "\n"
        return out


# -- helpers --------------------------------------------------------------------------------
def settings() -> dict:
    base = os.environ.get("GEMINI_CLI_HOME") or os.path.expanduser("~")
    try:
        with open(os.path.join(base, ".gemini", "settings.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def get(d: dict, path: str, default=None):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def compat_warnings(st: dict) -> list[str]:
    if get(st, "ui.showCompatibilityWarnings") is False:
        return []
    term, colorterm = os.environ.get("TERM", ""), os.environ.get("COLORTERM", "")
    truecolor = colorterm in ("truecolor", "24bit", "kmscon")
    out = []
    if term in ("dumb", "vt100"):
        out.append(f"Warning: Basic terminal detected (TERM={term}). Visual rendering will be limited. "
                   "For the best experience, use a terminal emulator with truecolor support.")
    if not ("256color" in term or truecolor):
        out.append("Warning: 256-color support not detected. Using a terminal with at least 256-color "
                   "support is recommended for a better visual experience.")
    elif not truecolor and os.environ.get("TERM_PROGRAM") != "Apple_Terminal":
        out.append("Warning: True color (24-bit) support not detected. Using a terminal with true color "
                   "enabled will result in a better visual experience.")
    return out


def read_stdin() -> str:
    """Like packages/cli/src/utils/readStdin.ts: wait 500 ms for piped data, then read to EOF."""
    try:
        if os.isatty(0):
            return ""
        ready, _, _ = select.select([0], [], [], 0.5)
    except (OSError, ValueError):
        return ""
    if not ready:
        return ""
    data = b""
    while len(data) < 8 * 1024 * 1024:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        data += chunk
    return data[: 8 * 1024 * 1024].decode("utf-8", "replace")


def trusted(opts: dict, st: dict) -> bool:
    env = os.environ.get("GEMINI_CLI_TRUST_WORKSPACE")
    if opts.get("skip-trust"):
        env = "true"
    if os.environ.get("GEMINI_RESTRICTED_MODE") == "true" or env == "false":
        return False
    if env == "true" or get(st, "security.folderTrust.enabled", True) is False:
        return True
    path = os.environ.get("GEMINI_CLI_TRUSTED_FOLDERS_PATH") or os.path.join(
        os.environ.get("GEMINI_CLI_HOME") or os.path.expanduser("~"), ".gemini", "trustedFolders.json")
    try:
        with open(path) as f:
            rules = json.load(f)
    except (OSError, ValueError):
        return False
    cwd = os.path.realpath(os.getcwd())
    best = None
    for p, level in rules.items():
        rp = os.path.realpath(p)
        if level == "TRUST_PARENT":
            rp = os.path.dirname(rp)
        if cwd == rp or cwd.startswith(rp.rstrip("/") + "/"):
            if best is None or len(rp) > len(best[0]):
                best = (rp, level)
    return best is not None and best[1] != "DO_NOT_TRUST"


def auth_error(st: dict) -> str | None:
    selected = get(st, "security.auth.selectedType")
    if selected is None:
        if os.environ.get("GOOGLE_GENAI_USE_GCA") == "true" or os.environ.get("GOOGLE_GENAI_USE_VERTEXAI") == "true":
            return None
        if os.environ.get("GOOGLE_GEMINI_BASE_URL"):
            return "Invalid auth method selected."
        if os.environ.get("GEMINI_API_KEY"):
            return None
        return no_auth_message()
    if selected == "gemini-api-key" and not os.environ.get("GEMINI_API_KEY"):
        return no_key_message()
    return None


def no_auth_message() -> str:
    base = os.environ.get("GEMINI_CLI_HOME") or os.path.expanduser("~")
    return (f"Please set an Auth method in your {os.path.join(base, '.gemini', 'settings.json')} or specify one of "
            "the following environment variables before running: GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GENAI_USE_GCA")


def no_key_message() -> str:
    return ("When using Gemini API, you must specify the GEMINI_API_KEY environment variable.\n"
            "Update your environment and try again (no reload needed if using .env)!")


def error_json(session: str, message: str, code, etype: str = "Error") -> str:
    err = {"type": etype, "message": message}
    if code:
        err["code"] = code
    return json.dumps({"session_id": session, "error": err}, indent=2, ensure_ascii=False) + "\n"


def tokens_for(text: str, response: str, model: str, router: bool = False) -> dict:
    if router:
        prompt = 1100 + math.ceil(len(text) / 4)
        cand, thoughts = 24, 180
    else:
        prompt = int(os.environ.get("FAKE_GEMINI_PROMPT_TOKENS") or 7400 + math.ceil(len(text) / 4))
        cand = max(1, math.ceil(len(response) / 4))
        default_thoughts = 0 if "lite" in model else 40 + 3 * cand
        thoughts = int(os.environ.get("FAKE_GEMINI_THOUGHTS_TOKENS") or default_thoughts)
    return {"input": prompt, "prompt": prompt, "candidates": cand, "total": prompt + cand + thoughts,
            "cached": 0, "thoughts": thoughts, "tool": 0}


def model_stats(tokens: dict, role: str, requests: int = 1, errors: int = 0) -> dict:
    latency = random.randint(900, 4000) * requests
    api = {"totalRequests": requests, "totalErrors": errors, "totalLatencyMs": latency,
           "errorsByType": {"ApiError": errors} if errors else {}}
    return {"api": api, "tokens": tokens,
            "roles": {role: {"totalRequests": requests, "totalErrors": errors, "totalLatencyMs": latency,
                             "tokens": dict(tokens)}}}


TOOLS = {"totalCalls": 0, "totalSuccess": 0, "totalFail": 0, "totalDurationMs": 0,
         "totalDecisions": {"accept": 0, "reject": 0, "modify": 0, "auto_accept": 0}, "byName": {}}


class Run:
    def __init__(self):
        self.err = sys.stderr
        self.scale = float(os.environ.get("FAKE_GEMINI_RETRY_TIME_SCALE") or 0)

    def w(self, s: str):
        self.err.write(s)
        self.err.flush()

    def sleep(self, seconds: float):
        if seconds > 0:
            time.sleep(seconds)


def scenario_for(spec: str, requested: str, actual: str) -> str:
    if "=" not in spec:
        return spec
    table = dict(item.split("=", 1) for item in spec.split(",") if "=" in item)
    return table.get(requested) or table.get(actual) or table.get("*", "success")


def log_run(entry: dict):
    path = os.environ.get("FAKE_GEMINI_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


# -- main -----------------------------------------------------------------------------------
def worker(argv: list[str]) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):  # the real CLI exits 0 with no result
        signal.signal(sig, lambda *_: os._exit(0))
    out = sys.stdout
    entry = {"argv": argv, "cwd": os.getcwd(), "stdin": None}
    try:
        opts = parse_argv(argv)
    except ArgError as e:
        sys.stderr.write(str(e) + "\n" + HELP)
        entry["exit"] = 1
        log_run(entry)
        return 1
    if opts.get("version"):
        out.write(VERSION + "\n")
        return 0
    if opts.get("help"):
        out.write(HELP)
        return 0
    st = settings()
    spec = os.environ.get("FAKE_GEMINI_SCENARIO", "success").strip() or "success"
    fmt = opts.get("output-format") or get(st, "output.format") or "text"
    session = str(uuid.uuid4())
    run = Run()
    mval = opts.get("model")
    requested = (mval[-1] if isinstance(mval, list) else mval) if mval is not None else (
        os.environ.get("GEMINI_MODEL") or get(st, "model.name") or "")
    requested = requested.strip()
    actual = AUTO_MAIN if requested in AUTO else REWRITE.get(requested, requested)
    scenario = scenario_for(spec, requested, actual)
    scenario = {"hang": "timeout", "fail_then_ok": "recover"}.get(scenario, scenario)
    names = [scenario_for(spec, "", "")] + ([v for v in (x.split("=", 1)[1] for x in spec.split(",") if "=" in x)])
    for n in names:
        if n.split(":")[0] not in KNOWN:
            sys.stderr.write(f"fake_gemini: unknown FAKE_GEMINI_SCENARIO {n!r}; known: {', '.join(sorted(KNOWN))}\n")
            return 2
    entry.update(scenario=scenario, model=requested, api_model=actual)

    def finish(code: int) -> int:
        entry["exit"] = code
        log_run(entry)
        return code

    # 0. unreadable settings.json / trustedFolders.json (exit 52, plain red text, no JSON)
    if scenario in ("bad_settings", "bad_trusted_folders"):
        base = os.path.join(os.environ.get("GEMINI_CLI_HOME") or os.path.expanduser("~"), ".gemini")
        if scenario == "bad_settings":
            path, plural = os.path.join(base, "settings.json"), "(s)"
            detail = "Expected double-quoted property name in JSON at position 59"
        else:
            path = os.environ.get("GEMINI_CLI_TRUSTED_FOLDERS_PATH") or os.path.join(base, "trustedFolders.json")
            plural, detail = "", "Expected property name or '}' in JSON at position 1"
        detail = os.environ.get("FAKE_GEMINI_CONFIG_ERROR") or detail
        msg = f"Error in {path}: {detail}\nPlease fix the configuration file{plural} and try again."
        run.w((msg if os.environ.get("NO_COLOR") else f"\x1b[31m{msg}\x1b[0m") + "\n")
        return finish(52)
    # 1. folder trust (exit 55, plain text, no JSON even with -o json)
    if scenario == "untrusted" or (os.environ.get("FAKE_GEMINI_CHECK_TRUST") == "1" and not trusted(opts, st)):
        msg = TRUST_MSG if os.environ.get("NO_COLOR") else f"\x1b[31m{TRUST_MSG}\x1b[0m"
        run.w(msg + "\n")
        return finish(55)
    # 2. authentication (exit 41; only the JSON in json mode)
    auth = {"no_auth": no_auth_message(), "no_key": no_key_message(),
            "gateway_auth": "Invalid auth method selected."}.get(scenario)
    if auth is None and os.environ.get("FAKE_GEMINI_CHECK_AUTH") == "1":
        auth = auth_error(st)
    if auth is not None:
        run.w(error_json(session, auth, 41) if fmt == "json" else auth + "\n")
        return finish(41)
    # 3. start-up noise, stdin, input check
    noise = os.environ.get("FAKE_GEMINI_NOISE", "1") != "0"
    if noise:
        for line in compat_warnings(st):
            run.w(line + "\n")
        if shutil.which("rg") is None:
            run.w("Ripgrep is not available. Falling back to GrepTool.\n")
    stdin = read_stdin()
    entry["stdin"] = stdin
    prompt = opts.get("prompt")
    if isinstance(prompt, list):  # -p twice: the real CLI crashes on the array
        if noise:
            run.w("[STARTUP] Phase 'cleanup_ops' was started but never ended. Skipping metrics.\n")
        run.w(error_json(session, "query.startsWith is not a function", 1, "TypeError"))
        return finish(1)
    if prompt is None and opts["query"]:
        prompt = " ".join(opts["query"])
    text = f"{stdin}\n\n{prompt}" if stdin and prompt else (stdin or prompt or "")
    if noise:
        run.w("[STARTUP] Phase 'cleanup_ops' was started but never ended. Skipping metrics.\n")
    if not text:
        run.w(NO_INPUT + "\n")
        return finish(42)
    run.sleep(float(os.environ.get("FAKE_GEMINI_SLEEP_S") or 0))

    # 4. the model call(s), with the CLI's own retries
    response = os.environ.get("FAKE_GEMINI_RESPONSE", "Hello from the fake gemini.")
    max_attempts = min(10, int(get(st, "general.maxAttempts", 10) or 10))
    stats_models: dict = {}
    if requested in AUTO:
        stats_models[ROUTER_MODEL] = model_stats(tokens_for(text, "", ROUTER_MODEL, router=True), "utility_router")
    chain = [requested] + SILENT_CHAIN.get(requested, [])
    recover = None
    if scenario.split(":")[0] in ("recover", "fail_then_ok"):
        recover = int(scenario.split(":", 1)[1]) if ":" in scenario else 1
    failure = None
    for hop, name in enumerate(chain):
        api_model = actual if hop == 0 else name
        sc = scenario if hop == 0 else scenario_for(spec, name, name)
        sc = "timeout" if sc == "hang" else sc
        if recover is not None or sc == "success":
            fails = recover or 0
            delay = 5.0
            for a in range(1, fails + 1):
                f503 = Failure("overload", api_model)
                d = max(0.0, delay + delay * 0.3 * (random.random() * 2 - 1))
                run.w(f503.attempt_block(a, d * 1000))
                run.sleep(d * run.scale)
                delay = min(30.0, delay * 2)
            stats_models[api_model] = model_stats(tokens_for(text, response, api_model), "main", fails + 1, fails)
            failure = None
            break
        failure = Failure(sc, api_model)
        attempts = max_attempts if failure.retries else 1
        delay = 5.0
        for a in range(1, attempts + 1):
            if failure.kind == "fetch" and sc == "timeout":
                run.sleep(60 * run.scale)
            if failure.kind == "stall":
                run.sleep(300 * run.scale)
            if a == attempts:
                break
            if failure.retry_delay is not None:
                delay = max(delay, failure.retry_delay)
                d = delay + delay * 0.2 * random.random()
            else:
                d = max(0.0, delay + delay * 0.3 * (random.random() * 2 - 1))
            run.w(failure.attempt_block(a, d * 1000))
            run.sleep(d * run.scale)
            delay = min(30.0, delay * 2)
        stats_models[api_model] = model_stats({k: 0 for k in ("input", "prompt", "candidates", "total", "cached", "thoughts", "tool")},
                                              "main", attempts, attempts)
        # the real CLI falls back silently only along SILENT_CHAIN and not after "fetch" errors
        if failure.kind in ("fetch", "stall", "fatal_api"):
            break
    if failure is not None:
        run.w(failure.final_block(max_attempts if failure.retries else 1))
        if fmt == "json":
            run.w(error_json(session, failure.message, failure.code))
            return finish(failure.exit)
        run.w("An unexpected critical error occurred:[object Object]\n")  # capture p4_text_output_error
        return finish(1)
    if fmt == "json":
        doc = {"session_id": session, "response": response,
               "stats": {"models": stats_models, "tools": TOOLS, "files": {"totalLinesAdded": 0, "totalLinesRemoved": 0}}}
        out.write(json.dumps(doc, indent=2, ensure_ascii=False))  # no trailing newline, like the real one
    else:
        out.write(response if response.endswith("\n") else response + "\n")
    out.flush()
    return finish(0)


def main() -> int:
    argv = sys.argv[1:]
    if os.environ.get("GEMINI_CLI_NO_RELAUNCH") or os.environ.get("FAKE_GEMINI_CHILD") or \
            os.environ.get("FAKE_GEMINI_RELAUNCH") == "0":
        return worker(argv)
    # like packages/cli/index.ts: relaunch as a child; the parent ignores the usual signals
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    env = dict(os.environ, FAKE_GEMINI_CHILD="1")
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv], env=env)
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:
            continue
    return code if code >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
