"""A client for one cluster, from a kubeconfig as kubectl reads it (certificates, tokens, exec
plugins: the official client's loader), for concurrent JSON requests."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import ClusterError

# Requests in flight at once: Flux's kustomize-controller dry-runs with 4 to 20; the API server's
# priority and fairness queues the rest, and the provider itself runs at up to 400 burst.
CONCURRENCY = 16
# An unreachable API server must not hold a commit for minutes.
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    """The decoded JSON (a `Status` on errors), or None."""

    @property
    def message(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("message"), str):
            return str(self.body["message"])
        return f"HTTP {self.status}"


class KubeApi:
    def __init__(self, kubeconfig: str | None, context: str | None, concurrency: int = CONCURRENCY):
        from kubernetes import client, config  # ~0.3 s to import: only when a cluster is asked

        configuration = client.Configuration()
        try:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration,
                                    persist_config=False)
        except (config.ConfigException, OSError, ValueError) as e:
            where = kubeconfig or "the ambient kubeconfig ($KUBECONFIG, ~/.kube/config)"
            raise ClusterError(f"cannot use {where}{f', context {context}' if context else ''}: {e}") from e
        configuration.connection_pool_maxsize = concurrency
        self.server = str(configuration.host)
        self._api = client.ApiClient(configuration)

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                accept: str = "application/json", query: list[tuple[str, str]] | None = None) -> Response:
        """One request with a JSON-able `body`; connection problems raise ClusterError, HTTP errors come
        back as a Response."""
        from urllib3.exceptions import HTTPError

        if body is not None and "json" not in content_type:
            body = json.dumps(body)  # the client encodes only JSON content types; JSON is YAML too

        params = self._api.param_serialize(method, path, query_params=query or [],
                                           header_params={"Content-Type": content_type, "Accept": accept},
                                           body=body, auth_settings=["BearerToken"])
        try:
            raw = self._api.call_api(*params, _request_timeout=TIMEOUT_SECONDS)
            raw.read()
        except HTTPError as e:
            raise ClusterError(f"cannot reach the API server at {self.server}: {type(e).__name__}") from e
        data = raw.data or b""
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = {"message": data[:300].decode(errors="replace")}
        return Response(int(raw.status), decoded)

    def close(self) -> None:
        self._api.close()
