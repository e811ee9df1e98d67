"""Upload an export to the Hugging Face hub as a dataset repo, with one-line errors.

Checked before the export starts (repo id, token), so a typo costs nothing; an upload that fails
afterwards (network, auth, a missing namespace) leaves the local export whole and says so.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, UserError, reason

NO_TOKEN = "--push-to-hub: no Hugging Face token; set HF_TOKEN or run `hf auth login` (nothing was exported)"


def check(repo: str) -> None:
    """A valid repo id and a token, or one line saying what to do."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as e:
        raise ConfigError(f"--push-to-hub {repo}: {reason(e)}") from None
    if not get_token():
        raise UserError(NO_TOKEN)


def _reason(e: Exception) -> str:
    status = getattr(getattr(e, "response", None), "status_code", None)
    first = reason(e, limit=200)
    if status in (401, 403):
        return f"{first}; does the token have write access to it?"
    return first


def push(folder: Path, repo: str, private: bool, out: Path, rows: int, kind: str | None) -> str:
    """Create the dataset repo if needed and upload `folder` as one commit; its data/ replaces the
    repo's data/, so shards of an earlier, larger export never mix with these."""
    import huggingface_hub.errors as hub_errors
    from huggingface_hub import HfApi

    # HfHubHTTPError (auth, not found, rate limit) and offline mode are OSErrors; a refused or
    # timed-out connection is the HTTP library's own error, re-exported by huggingface_hub
    failures = (OSError, getattr(hub_errors, "HTTPError", OSError))
    kept = f"the export in {out} is complete"
    api = HfApi()
    try:
        url = api.create_repo(repo, repo_type="dataset", exist_ok=True, private=True if private else None)
        if private and not api.repo_info(repo, repo_type="dataset").private:
            raise UserError(f"--push-to-hub {repo}: the repo exists and is public, and --private does not change "
                            f"that; make it private on the hub or use a new repo (nothing uploaded; {kept})")
        api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(folder), delete_patterns=["data/*"],
                          commit_message=f"distill export: {rows} {kind or ''} rows".replace("  ", " "))
    except failures as e:
        raise UserError(f"--push-to-hub {repo}: upload failed ({_reason(e)}); {kept}; "
                        "rerun the same command to retry") from None
    return str(url) if url else f"https://huggingface.co/datasets/{repo}"
