"""The stack's config as the engine hands it to the program, read into StackConfig or refused.

Every problem is reported at once, each as `seldon-rollout:<key path>: <what is wrong>`, one per line;
the program turns a ConfigError into a RunError, which the engine prints without a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from components.settings import StackConfig, choice_of, library_hint
from rollout.core.validation import Problem, problems_of

PROJECT = "seldon-rollout"
SECRET_KEYS = ("prometheusToken", "prometheusPassword")
"""Read only as secrets (`config.get_secret`), never into the settings."""
SECRET_SETTINGS = ("notifications",)
"""Read into the settings, but refused unless stored encrypted (the webhook URLs carry tokens)."""
_FIELDS = {field.alias: field for field in StackConfig.model_fields.values()}


DEV_STACK = "dev"
DEV_PASSPHRASE = "seldon-rollout-local-dev"
"""Published in this repository (scripts/pulumi-env): it serves the dev stack only."""
SECRETS_FOR_REAL_STACKS = (
    "needs a passphrase of your own or a cloud KMS secrets provider: the built-in passphrase serves the dev stack "
    "only (it is published in this repository). Set PULUMI_CONFIG_PASSPHRASE_FILE to a file only you can read (and "
    "unset PULUMI_CONFIG_PASSPHRASE), or create the stack with `pulumi stack init <stack> --secrets-provider "
    "awskms://...` (or gcpkms://, azurekeyvault://, hashivault://); see README.md, \"Secrets for real stacks\"")


def passphrase_problem(stack: str, environ: Mapping[str, str], stack_file: str | None) -> str | None:
    """Why `stack` may not run with the passphrase in `environ`, None when it may: any stack but dev under the
    published passphrase (set by scripts/pulumi-env, or typed in by hand), unless its file (`stack_file`, the
    text of Pulumi.<stack>.yaml) names a secrets provider other than a passphrase."""
    name = stack.rsplit("/", 1)[-1]
    if name == DEV_STACK or environ.get("PULUMI_CONFIG_PASSPHRASE") != DEV_PASSPHRASE:
        return None
    for line in (stack_file or "").splitlines():
        if line.startswith("secretsprovider:"):
            provider = line.split(":", 1)[1].strip().strip("'\"")
            if provider and not provider.startswith("passphrase"):
                return None  # a cloud KMS: the passphrase is not used
    return f"stack {name!r} {SECRETS_FOR_REAL_STACKS}"


class ConfigError(ValueError):
    """Stack config is invalid; `problems` names each key and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack config:\n  " + "\n  ".join(problems))


def _decode(key: str, text: Any) -> Any:
    """The engine hands config values as strings, objects and arrays as JSON; a string key stays as written."""
    field = _FIELDS.get(key)
    if not isinstance(text, str) or (field is not None and field.annotation is str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text  # reported by the type check


def load_stack_config(values: Mapping[str, Any], secret: Collection[str] = ()) -> StackConfig:
    """The settings from the stack's raw values (`key -> string`, without the `seldon-rollout:` prefix).

    `secret` names the keys the stack holds encrypted; a credential stored in plain text is refused (the
    engine cannot enforce `secret: true` on a key that may be left unset). Raises ConfigError naming every
    problem, each as `seldon-rollout:<key path>: <what is wrong>`.
    """
    plain_secrets = [Problem(key, f"stored in plaintext; set it with `pulumi config set --secret {key} <value>`")
                     for key in SECRET_KEYS if values.get(key) and key not in secret]
    plain_secrets += [Problem(key, f"stored in plaintext; set each URL with `pulumi config set --secret --path "
                                   f"'{key}[0].url' <url>`")
                      for key in SECRET_SETTINGS
                      if _decode(key, values.get(key)) not in (None, "", []) and key not in secret]
    raw = {key: _decode(key, value) for key, value in values.items() if key not in SECRET_KEYS}
    try:
        settings = StackConfig.model_validate(raw)
    except ValidationError as err:
        problems = plain_secrets + problems_of(err, secret=SECRET_SETTINGS)
        raise ConfigError([f"{PROJECT}:{p}" for p in problems]) from None
    if plain_secrets:
        raise ConfigError([f"{PROJECT}:{p}" for p in plain_secrets])
    try:
        settings.experiment_spec()
    except ValidationError as err:  # the experiment left at the seed's (not validated as written), or a safety net
        problems = [Problem(p.field, library_hint(settings.experiment, e["loc"], p.message, choice_of(dict(settings))))
                    for p, e in zip(problems_of(err, "experiment"), err.errors(), strict=True)]
        raise ConfigError([f"{PROJECT}:{p}" for p in problems]) from None
    return settings


def project_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """The project's own keys from a config map (`seldon-rollout:key -> value`)."""
    prefix = f"{PROJECT}:"
    return {key.removeprefix(prefix): value for key, value in config.items() if key.startswith(prefix)}


def program_config() -> tuple[dict[str, Any], set[str]]:
    """The project's raw config values and the keys held encrypted, as the engine hands them to the program."""
    import pulumi.runtime.config as runtime

    values = project_values({**runtime.get_config_env(), **runtime.CONFIG.get()})
    encrypted = set(runtime.get_config_secret_keys_env())
    secret = {key for key in values if f"{PROJECT}:{key}" in encrypted or runtime.is_config_secret(f"{PROJECT}:{key}")}
    return values, secret


def read_stack_file(stack: str) -> str | None:
    """The text of `Pulumi.<stack>.yaml` in the working directory (the project's), None when there is none."""
    try:
        return Path(f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml").read_text()
    except OSError:
        return None
