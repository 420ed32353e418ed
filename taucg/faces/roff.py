"""man(7) roff, written safely: text escaped so that no help string can
start a request or leave the ASCII groff expects, and the few macros the
pages use (TH, SH, SS, TP, PP, RS/RE, nf/fi)."""

from __future__ import annotations

from dataclasses import dataclass, field


def escape(text: str) -> str:
    """Plain text -> roff text on one or more lines."""
    out = []
    for ch in text.replace("\\", "\\e"):
        if ch == "-":
            out.append("\\-")  # a real minus, so options can be searched and copied
        elif ord(ch) > 126:
            out.append(f"\\[u{ord(ch):04X}]")
        else:
            out.append(ch)
    lines = "".join(out).split("\n")
    # A line starting with . or ' would be read as a request.
    return "\n".join(f"\\&{line}" if line.startswith((".", "'")) else line for line in lines)


def bold(text: str) -> str:
    return f"\\fB{escape(text)}\\fR"


def italic(text: str) -> str:
    return f"\\fI{escape(text)}\\fR"


@dataclass
class Page:
    """Lines of a man page, built top to bottom."""

    lines: list[str] = field(default_factory=list)

    def title(self, name: str, section: int, source: str, manual: str) -> None:
        self.lines.append(f'.TH {escape(name.upper())} {section} "" '
                          f'"{escape(source)}" "{escape(manual)}"')

    def section(self, title: str, upper: bool = True) -> None:
        self.lines.append(f'.SH "{escape(title.upper() if upper else title)}"')

    def subsection(self, title: str) -> None:
        self.lines.append(f'.SS "{escape(title)}"')

    def raw(self, roff: str) -> None:
        """Roff already escaped (bold()/italic() pieces)."""
        self.lines.append(roff)

    def para(self, text: str) -> None:
        """Paragraphs separated by blank lines, each filled by the formatter;
        a paragraph whose first line is click's \\b marker keeps its lines."""
        for raw in text.strip().split("\n\n"):
            block = raw.strip("\n")
            if not block.strip():
                continue
            self.lines.append(".PP")
            if block.lstrip().startswith("\b"):
                self.lines += [".nf", escape(block.split("\n", 1)[1] if "\n" in block else ""),
                               ".fi"]
            else:
                self.lines.append(escape(" ".join(w for w in block.split())))

    def item(self, term_roff: str, text: str) -> None:
        """A tagged paragraph: the term (escaped roff), then its text."""
        self.lines += [".TP", term_roff]
        body = " ".join(text.split())
        if body:
            self.lines.append(escape(body))

    def verbatim(self, text: str) -> None:
        self.lines += [".PP", ".nf", ".RS 4", escape(text.rstrip("\n")), ".RE", ".fi"]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
