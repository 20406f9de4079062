// Package doctest turns the command blocks of the project's Markdown
// documents into a testscript script (github.com/rogpeppe/go-internal),
// so that the end-to-end tests run the documentation as written
// (e2e/docs_test.go). Each shell block becomes one `exec` of Runner, which
// carries the shell's variables and working directory from one block to
// the next, as pasting the blocks into one terminal does. Markdown
// comments above a fence say what a block needs:
//
//	<!-- doc-test: skip: <why> -->             not run here (a real vendor, the test suite itself); bash -n checks it
//	<!-- doc-test: runs against … -->          run against a second, empty Vault (VAULT_ADDR, PLUGIN_DIR from FRESH_*)
//	<!-- doc-test: needs <path>: <why> -->     run once `vault path-help <path>` answers; until then skipped, saying so
//
// A block whose commands start with "$ " shows their output: each other
// line is compared with what the commands print ("…" stands for what
// varies). JSON blocks must parse, and template blocks (Vault Agent's)
// must parse as Go templates (the testscript commands jsonvalid and
// tmplvalid, which the caller provides). Any other fence is an error until
// it is classified here.
package doctest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Docs are the files whose blocks run, in this order.
var Docs = []string{"README.md", "bootstrap/README.md"}

// Runner runs one block: `run-block.sh MODE FILE [PATH]`.
const Runner = `#!/usr/bin/env bash
# MODE is "shell" (the next paste into the one shell), "fresh" (a block for
# the second, empty Vault; its variables are not kept) or "needs" (shell,
# once PATH's help answers).
mode=$1 file=$2 needs=$3
state="$WORK/.docstate"
mkdir -p "$state"
if [[ "$mode" == fresh ]]; then
  cd "$REPO"
  export VAULT_ADDR="$FRESH_ADDR" VAULT_TOKEN="$FRESH_TOKEN" BAO_ADDR="$FRESH_ADDR" BAO_TOKEN="$FRESH_TOKEN" PLUGIN_DIR="$FRESH_PLUGINS"
  set -eo pipefail
  source "$WORK/$file"
  exit 0
fi
if [[ -f "$state/vars" ]]; then source "$state/vars" 2>/dev/null; fi
cd "$(cat "$state/cwd" 2>/dev/null || echo "$REPO")"
if [[ "$mode" == needs ]] && ! vault path-help "$needs" >/dev/null 2>&1; then
  echo "doc-test: skipped: $needs is not served by this plugin yet"
  exit 0
fi
set -eo pipefail
source "$WORK/$file"
set +eo pipefail
pwd >"$state/cwd"
declare -p $(compgen -v | grep -Ev '^(BASH.*|EUID|PPID|SHELLOPTS|UID|FUNCNAME|GROUPS|DIRSTACK|PIPESTATUS|RANDOM|SRANDOM|SECONDS|LINENO|HISTCMD|_|COMP_.*|PWD|OLDPWD|SHLVL|IFS|PS[0-9]|OPT.*|HOSTNAME|HOSTTYPE|MACHTYPE|OSTYPE|EPOCH.*|mode|file|needs|state)$') >"$state/vars" 2>/dev/null
exit 0
`

// Block is one fenced block of a Markdown file.
type Block struct {
	line   int    // of the opening fence
	lang   string // the fence's info string, first word
	marker string // the doc-test comment above it, "" for none
	text   string
}

var (
	fenceRE  = regexp.MustCompile("^```([A-Za-z0-9_-]*)")
	markerRE = regexp.MustCompile(`^<!-- doc-test: (.*?) -->$`)
)

// ParseBlocks returns the fenced blocks of a Markdown text in order.
func ParseBlocks(text string) []Block {
	var out []Block
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		b := Block{line: i + 1, lang: m[1]}
		for j := i - 1; j >= 0; j-- {
			if strings.TrimSpace(lines[j]) == "" {
				continue
			}
			if mm := markerRE.FindStringSubmatch(strings.TrimSpace(lines[j])); mm != nil {
				b.marker = mm[1]
			}
			break
		}
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			body = append(body, lines[i])
		}
		b.text = strings.Join(body, "\n") + "\n"
		out = append(out, b)
	}
	return out
}

// SplitPrompted separates a block written as a terminal session ("$ cmd",
// continuation lines ending in "\", then output) into the script and the
// output lines it shows; ok is false for a plain script.
func SplitPrompted(text string) (script string, output []string, ok bool) {
	var cmds []string
	cont := false
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "$ "):
			ok = true
			cmds = append(cmds, strings.TrimPrefix(l, "$ "))
			cont = strings.HasSuffix(l, `\`)
		case cont:
			cmds = append(cmds, l)
			cont = strings.HasSuffix(l, `\`)
		case strings.TrimSpace(l) != "":
			output = append(output, l)
		}
	}
	return strings.Join(cmds, "\n") + "\n", output, ok
}

// OutputPattern is the testscript regexp for one shown output line: the
// text exactly, "…" for anything, any run of spaces for any whitespace.
func OutputPattern(line string) string {
	parts := strings.Split(strings.TrimSpace(line), "…")
	for i, part := range parts {
		words := strings.Fields(part)
		for j, w := range words {
			words[j] = regexp.QuoteMeta(w)
		}
		p := strings.Join(words, `\s+`)
		if p != "" && strings.TrimLeft(part, " \t") != part && i > 0 {
			p = `\s+` + p
		}
		if p != "" && strings.TrimRight(part, " \t") != part && i < len(parts)-1 {
			p += `\s+`
		}
		parts[i] = p
	}
	return `(?m)^` + strings.Join(parts, `.*`) + `\s*$`
}

// Script turns the blocks of docs (paths relative to root) into one
// testscript script with its files: run-block.sh (Runner), one file per
// block, and the commands that run or check each in order.
func Script(root string, docs []string) (string, error) {
	var script, files strings.Builder
	files.WriteString("-- run-block.sh --\n" + Runner)
	for _, doc := range docs {
		raw, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			return "", err
		}
		slug := strings.NewReplacer("/", "-", ".md", "").Replace(doc)
		fmt.Fprintf(&script, "\n# ---- %s ----\n", doc)
		// Each document starts in the repository's root, as its reader
		// does; the shell's variables go on.
		fmt.Fprintf(&script, "exec bash -c 'mkdir -p $WORK/.docstate && echo $REPO > $WORK/.docstate/cwd'\n")
		for _, b := range ParseBlocks(string(raw)) {
			name := fmt.Sprintf("%s-%04d", slug, b.line)
			where := fmt.Sprintf("%s:%d", doc, b.line)
			switch {
			case b.lang == "sh":
				body, shown, prompted := SplitPrompted(b.text)
				if !prompted {
					body = b.text
				}
				fmt.Fprintf(&files, "-- %s.sh --\n%s", name, body)
				switch {
				case strings.HasPrefix(b.marker, "skip:"):
					fmt.Fprintf(&script, "# %s: not run (%s); syntax only\nexec bash -n %s.sh\n", where, strings.TrimSpace(strings.TrimPrefix(b.marker, "skip:")), name)
				case strings.HasPrefix(b.marker, "runs against"):
					fmt.Fprintf(&script, "# %s, against the second Vault\nexec bash run-block.sh fresh %s.sh\n", where, name)
				case strings.HasPrefix(b.marker, "needs "):
					path, _, _ := strings.Cut(strings.TrimPrefix(b.marker, "needs "), ":")
					fmt.Fprintf(&script, "# %s, once %s is served\nexec bash run-block.sh needs %s.sh %s\n", where, path, name, strings.TrimSpace(path))
				case b.marker != "":
					return "", fmt.Errorf("%s: unknown doc-test marker %q", where, b.marker)
				default:
					fmt.Fprintf(&script, "# %s\nexec bash run-block.sh shell %s.sh\n", where, name)
				}
				if prompted && !strings.HasPrefix(b.marker, "skip:") {
					for _, l := range shown {
						fmt.Fprintf(&script, "stdout %s\n", quoteArg(OutputPattern(l)))
					}
				}
			case b.lang == "go":
				// A whole Go file (a webhook receiver, say): it must parse.
				fmt.Fprintf(&files, "-- %s.go.txt --\n%s", name, b.text)
				fmt.Fprintf(&script, "# %s\ngovalid %s.go.txt\n", where, name)
			case b.lang == "json":
				fmt.Fprintf(&files, "-- %s.json --\n%s", name, b.text)
				fmt.Fprintf(&script, "# %s\njsonvalid %s.json\n", where, name)
			case b.lang == "" && strings.Contains(b.text, "{{"):
				fmt.Fprintf(&files, "-- %s.tmpl --\n%s", name, b.text)
				fmt.Fprintf(&script, "# %s\ntmplvalid %s.tmpl\n", where, name)
			default:
				return "", fmt.Errorf("%s: a ```%s block the documentation test does not know how to run or check; classify it in internal/doctest", where, b.lang)
			}
		}
	}
	return script.String() + files.String(), nil
}

// quoteArg quotes a testscript argument.
func quoteArg(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
