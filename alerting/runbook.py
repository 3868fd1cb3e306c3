"""`GET /runbook`: the runbook, rendered from its Markdown, one anchor per alert section.

The Markdown is `docs/runbook.md` of the source tree, or the copy packaged beside this module in
`alerting/docs/` (the container image puts the docs there). The other docs pages the runbook links to
(`pricing.md`, `alerting-paths.md#runbook-links`) are served beside it at `/docs/NAME.md`, rendered the
same way, and links between pages are rewritten to those paths, so every link the on-call person
follows from an alert's section opens. The images the pages show (`img/console.png`) are served at
`/docs/img/NAME.png` from the docs' `img/` folder; an image that is not there is shown as its alt text
rather than as a broken image. It is rendered with markdown-it-py in CommonMark mode with raw HTML
disabled (`<`, `>` and `&` in the text are escaped, `javascript:` links are refused), and every
heading gets the id GitHub would give it (`## LLMBudgetWarning` → `#llmbudgetwarning`), so a
`runbook_url` works the same against GitHub and against llmcost.
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from alerting.links import RUNBOOK_PATH, anchor

_HERE = Path(__file__).resolve().parent
DOC_DIRS = (_HERE / "docs", _HERE.parent / "docs")
"""Where the docs are: packaged beside this module (the image, a wheel), else the source tree's `docs/`."""
DOCS_PATH = "/docs"
_PAGE = re.compile(r"([a-z0-9][a-z0-9-]*)\.md")
_PAGE_LINK = re.compile(r"([a-z0-9][a-z0-9-]*)\.md(#[^\s]*)?")
_IMAGE = re.compile(r"[a-z0-9][a-z0-9-]*\.png")
_IMAGE_LINK = re.compile(r"img/([a-z0-9][a-z0-9-]*\.png)")
IMAGES_PATH = f"{DOCS_PATH}/img"
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1f2328}"
    "pre{background:#f6f8fa;padding:.75rem;overflow-x:auto}code{font-size:90%}"
    "table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.25rem .5rem}"
    "h2{border-top:1px solid #d0d7de;padding-top:1rem}a.anchor{margin-left:.4rem;color:#8c959f}"
    "img{max-width:100%;height:auto}"
)


def runbook_source() -> Path | None:
    """The runbook's Markdown file, or None when neither location has one."""
    return doc_source("runbook.md")


def doc_source(name: str) -> Path | None:
    """The docs page `name` (`pricing.md`), or None: no such page, or a name that is not a page's."""
    if not _PAGE.fullmatch(name):
        return None  # no path separators, no dots but the suffix: nothing outside the docs folder
    folder = next((d for d in DOC_DIRS if (d / "runbook.md").is_file()), None)
    path = None if folder is None else folder / name
    return path if path is not None and path.is_file() else None


def image_source(name: str) -> Path | None:
    """The docs image `name` (`console.png`) in the docs' `img/` folder, or None: no such image."""
    if not _IMAGE.fullmatch(name):
        return None  # no path separators: nothing outside the folder
    folder = next((d for d in DOC_DIRS if (d / "runbook.md").is_file()), None)
    path = None if folder is None else folder / "img" / name
    return path if path is not None and path.is_file() else None


def _image_src(src: str) -> str:
    """The path llmcost serves a page's image at (`img/x.png` → `/docs/img/x.png`), or "": not served."""
    match = _IMAGE_LINK.fullmatch(src)
    return f"{IMAGES_PATH}/{match.group(1)}" if match and image_source(match.group(1)) else ""


def _page_href(href: str) -> str:
    """A link to another docs page (`pricing.md#x`) as the path llmcost serves it at; others unchanged."""
    match = _PAGE_LINK.fullmatch(href)
    if match is None:
        return href
    name, fragment = match.group(1), match.group(2) or ""
    return f"{RUNBOOK_PATH}{fragment}" if name == "runbook" else f"{DOCS_PATH}/{name}.md{fragment}"


def section_titles(markdown: str) -> list[str]:
    """The `## ` headings of the runbook, in order."""
    return [token.content for token in _headings(markdown) if token.content]


def _headings(markdown: str) -> list[Token]:
    tokens = _parser().parse(markdown)
    return [tokens[i + 1] for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"]


@functools.cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def render(markdown: str) -> str:
    """The runbook as one HTML page; each heading carries its GitHub-style id."""
    md = _parser()
    tokens = md.parse(markdown)
    used: dict[str, int] = {}
    title = "llmcost runbook"
    for token in tokens:
        for child in token.children or ():
            if child.type == "link_open":
                child.attrSet("href", _page_href(str(child.attrGet("href") or "")))
            elif child.type == "image":
                src = _image_src(str(child.attrGet("src") or ""))
                if src:
                    child.attrSet("src", src)
                else:  # not served here (missing, or elsewhere, which the page's CSP blocks): its alt text
                    child.type, child.children = "text", None
    for i, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        text = tokens[i + 1].content
        if token.tag == "h1":
            title = text
        slug = anchor(text)
        count = used.get(slug, 0)
        used[slug] = count + 1
        token.attrSet("id", slug if count == 0 else f"{slug}-{count}")
    body = md.renderer.render(tokens, md.options, {})
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}</body></html>\n"
    )


@functools.lru_cache(maxsize=64)  # every docs page (22) with room: a miss renders on the event loop (~10 ms)
def _rendered(path: Path, mtime: float) -> str:
    return render(path.read_text(encoding="utf-8"))


def runbook_routes() -> list[BaseRoute]:
    """`GET /runbook`, `GET /runbook.md`, `GET /docs/NAME.md` and `GET /docs/img/NAME.png`.

    The runbook (HTML, and its Markdown), the pages it links to and their images. No token: they hold no data.
    """

    async def page(_request: Request) -> Response:
        path = runbook_source()
        if path is None:
            return PlainTextResponse("the runbook is not installed with this copy of llmcost", status_code=404)
        return HTMLResponse(_rendered(path, path.stat().st_mtime), headers=_HEADERS)

    async def source(_request: Request) -> Response:
        path = runbook_source()
        if path is None:
            return PlainTextResponse("the runbook is not installed with this copy of llmcost", status_code=404)
        return PlainTextResponse(path.read_text(encoding="utf-8"), media_type="text/markdown", headers=_HEADERS)

    async def image(request: Request) -> Response:
        path = image_source(str(request.path_params["name"]))
        if path is None:
            return PlainTextResponse("no such docs image", status_code=404)
        return FileResponse(path, media_type="image/png", headers=_HEADERS)

    async def doc_page(request: Request) -> Response:
        path = doc_source(str(request.path_params["name"]))
        if path is None:
            return PlainTextResponse("no such docs page", status_code=404)
        return HTMLResponse(_rendered(path, path.stat().st_mtime), headers=_HEADERS)

    return [
        Route(RUNBOOK_PATH, page, methods=["GET"]),
        Route(f"{RUNBOOK_PATH}.md", source, methods=["GET"]),
        Route(DOCS_PATH + "/{name}", doc_page, methods=["GET"]),
        Route(IMAGES_PATH + "/{name}", image, methods=["GET"]),
    ]
