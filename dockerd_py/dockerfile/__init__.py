"""The Dockerfile language, pure: text in, typed instructions out, words expanded on
request. No I/O and no dependency on the rest of the daemon: the builder (`builder/`)
and the engine's `commit`/`import --change` (`engine/images/changes.py`) both use it.

Modules, from the bottom up:

- `errors`: DockerfileError, the one error type.
- `golang`: Go's notations the language inherits (unicode.IsSpace, %q,
  time.ParseDuration, strconv.ParseInt).
- `dialect`: what differs between `docker build` and `--change` lines, as options.
- `lexer`: word expansion (`$V`, `${V:-x}`, quotes, escapes), moby's shell/lex.go.
- `instructions`: the typed instruction records and the parsed Dockerfile.
- `heredocs`: heredoc openers (`<<EOF`) in a line.
- `nodes`: one logical line → keyword, flags and arguments, split by its keyword.
- `reader`: text → nodes (directives, continuations, comments, heredoc bodies).
- `parser`: nodes → typed instructions with the reference's checks; `parse()` for a
  whole Dockerfile, `parse_instruction()` for an ONBUILD trigger.
"""
