"""The API documentation without a CDN: the OpenAPI JSON at /schema/openapi.json and a plain HTML page at /schema.

Litestar's UIs (ReDoc, Swagger, Scalar, ...) load their bundles from public CDNs, so offline (and under the
Content-Security-Policy of `http_guards`, which allows scripts from this origin only) /schema rendered nothing;
no package ships those bundles for a local copy. The documented entry is therefore the OpenAPI document itself,
`/schema/openapi.json`, which any tool (Swagger Editor, openapi-generator, schemathesis, an IDE) reads, and
`/schema` is a page rendered on the server from that same document: every operation with its parameters,
request body fields with their examples, and responses. No script, no external asset, one local stylesheet.

Descriptions are Markdown (the handlers' docstrings, the schemas' field descriptions): rendered with markdown-it
(CommonMark, raw HTML off: any HTML in a description is shown as text), block text for the API's and each
operation's description, inline for table cells. The document's own description is neutral (it is built once);
the page adds what is served now: the model version, its family and where its players and catalogue come from,
read from the served version's manifest, and credits RAWG only when the catalogue is RAWG's.
"""

from __future__ import annotations

from html import escape
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from markdown_it import MarkdownIt

from gamerec_api.state import ServingState

METHODS = ("get", "post", "put", "patch", "delete", "head")
DESCRIPTION = (
    "Game recommendations from the served model version: an item-to-item model (item-based collaborative "
    "filtering or one of its relatives, chosen by validation) trained on the deployment's game catalogue and play "
    "logs. `GET /users` says where the served version's players and catalogue come from, `GET /readyz` which "
    "version is served."
)
_MD = MarkdownIt("commonmark", {"html": False})


def markdown(text: object) -> str:
    """Block Markdown as HTML (paragraphs, lists, `code`, **bold**, links); raw HTML is escaped."""
    return _MD.render(str(text or ""))


def markdown_inline(text: object) -> str:
    """One table cell's Markdown as inline HTML (no paragraph)."""
    return _MD.renderInline(str(text or ""))


def served_now(state: ServingState | None) -> str:
    """Markdown: what the server answers from right now (empty while nothing is loaded)."""
    if state is None:
        return ""
    family = (state.model.artifact.manifest.get("parameters") or {}).get("model")
    players = state.source or "not recorded"
    catalogue = state.catalog_source or "not recorded"
    out = (
        f"Served now: model version `{state.version}`" + (f" ({family})" if family else "") + f"; players: "
        f"`{players}`; catalogue: `{catalogue}`."
    )
    return out + (" Data from RAWG (https://rawg.io)." if state.catalog_source == "rawg" else "")


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return doc.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})  # type: ignore[no-any-return]
    return schema


def _type(schema: dict[str, Any], doc: dict[str, Any]) -> str:
    """A short readable type: `integer (0..9223372036854775807)`, `array of integer`, `PredictRequest`."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[1]
    if "oneOf" in schema or "anyOf" in schema:
        return " | ".join(_type(s, doc) for s in schema.get("oneOf", schema.get("anyOf", [])))
    kind = str(schema.get("type", "any"))
    if kind == "array":
        kind = f"array of {_type(schema.get('items', {}), doc)}"
    bounds = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "minLength", "maxLength", "maxItems") if k in schema]
    if "enum" in schema:
        bounds.append("one of " + ", ".join(map(str, schema["enum"])))
    return f"{kind} ({'; '.join(bounds)})" if bounds else kind


def _json(value: Any) -> str:
    return escape(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


def _body(content: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for media, spec in content.items():
        schema = _resolve(spec.get("schema", {}), doc)
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        out.append(f"<p>Body <code>{escape(media)}</code></p>")
        if not props:
            out.append(f"<p><code>{escape(_type(spec.get('schema', {}), doc))}</code></p>")
            continue
        rows, example = [], {}
        for name, prop in props.items():
            if prop.get("examples"):
                example[name] = prop["examples"][0]
            rows.append(
                f"<tr><td><code>{escape(name)}</code>{' (required)' if name in required else ''}</td>"
                f"<td>{escape(_type(prop, doc))}</td><td>{markdown_inline(prop.get('description', ''))}</td></tr>"
            )
        out.append("<table><tr><th>field</th><th>type</th><th>description</th></tr>" + "".join(rows) + "</table>")
        if example:
            out.append(f"<p>Example</p><pre>{_json(example)}</pre>")
    return out


def render_html(doc: dict[str, Any], json_url: str, stylesheet: str = "/static/docs.css", served: str = "") -> bytes:
    """The whole page for an OpenAPI document (a pure function: tested without an app); `served`: Markdown about
    the served version (`served_now`)."""
    info = doc.get("info", {})
    title = escape(str(info.get("title", "API")))
    out = [
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} API</title>'
        f'<link rel="stylesheet" href="{escape(stylesheet)}"></head><body>',
        f"<h1>{title} {escape(str(info.get('version', '')))}</h1>",
        markdown(info.get("description", "")),
        markdown(served),
        f'<p>The OpenAPI document: <a href="{escape(json_url)}">{escape(json_url)}</a> (for tools and clients).</p>',
    ]
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if not op:
                continue
            out.append(f'<section class="op"><h2><span class="method">{method.upper()}</span> {escape(path)}</h2>')
            out.append(f"<p><strong>{markdown_inline(op.get('summary', ''))}</strong></p>")
            if op.get("description"):
                out.append(markdown(op["description"]))
            if op.get("security"):
                out.append("<p>Requires <code>Authorization: Bearer &lt;token&gt;</code>.</p>")
            params = op.get("parameters", [])
            if params:
                out.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>")
                for p in params:
                    req = " (required)" if p.get("required") else ""
                    out.append(
                        f"<tr><td><code>{escape(str(p.get('name')))}</code>{req}</td><td>{escape(str(p.get('in')))}"
                        f"</td><td>{escape(_type(p.get('schema', {}), doc))}</td>"
                        f"<td>{markdown_inline(p.get('description', ''))}</td></tr>"
                    )
                out.append("</table>")
            if body := op.get("requestBody"):
                out += _body(body.get("content", {}), doc)
            codes = ", ".join(
                f"<code>{escape(str(code))}</code> {markdown_inline(r.get('description', ''))}"
                for code, r in op.get("responses", {}).items()
            )
            out.append(f"<p>Responses: {codes}</p></section>")
    out.append("</body></html>")
    return "\n".join(out).encode()


class LocalDocsPlugin(OpenAPIRenderPlugin):
    """/schema: the server-rendered page (see the module docstring)."""

    def __init__(self, path: str = "/") -> None:
        super().__init__(path=path)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        holder = request.app.state.get("holder")
        served = served_now(getattr(holder, "state", None))
        return render_html(openapi_schema, self.get_openapi_json_route(request), served=served)


def docs_plugins() -> list[OpenAPIRenderPlugin]:
    """For `OpenAPIConfig(render_plugins=...)`: the page at /schema, the JSON at /schema/openapi.json."""
    return [LocalDocsPlugin(path="/"), JsonRenderPlugin(path="/openapi.json")]
