"""Secret values are hidden in every text and record Cautious writes."""

from __future__ import annotations

from cautious.redaction import (
    REDACTED,
    looks_secret,
    redact,
    redact_data,
    remember,
    remember_environment,
)


def test_names_with_token_secret_password_or_key_look_secret() -> None:
    assert all(map(looks_secret, ["API_TOKEN", "db_password", "AWS_SECRET_ACCESS_KEY", "KEY"]))
    assert not any(map(looks_secret, ["APP_GREETING", "PORT", "DATABASE_URL"]))


def test_a_remembered_value_is_redacted_wherever_it_appears() -> None:
    remember(["s3cr3t-value-one"])
    assert redact("failed: token=s3cr3t-value-one (twice: s3cr3t-value-one)") == (
        f"failed: token={REDACTED} (twice: {REDACTED})"
    )


def test_records_keep_their_shape_while_their_strings_are_redacted() -> None:
    remember(["s3cr3t-value-two"])
    record = {"reason": "env s3cr3t-value-two", "steps": [("s3cr3t-value-two", 1)], "n": 2}
    assert redact_data(record) == {"reason": f"env {REDACTED}", "steps": [(REDACTED, 1)], "n": 2}


def test_short_values_are_not_searched_for_in_free_text() -> None:
    remember(["v2"])
    assert redact("rollout v1 → v2") == "rollout v1 → v2"


def test_secret_looking_variables_of_the_process_environment_are_remembered() -> None:
    remember_environment({"GITHUB_TOKEN": "ghp_planted_for_the_test", "HOME": "/home/someone"})
    assert redact("auth ghp_planted_for_the_test at /home/someone") == (
        f"auth {REDACTED} at /home/someone"
    )
