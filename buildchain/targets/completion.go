package targets

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// Completion writes a bash or zsh completion script for the mage targets
// and, after steps and info, the step names of the build graph as planned
// now: re-generate it when the image or package lists change. It completes
// `mage ...` and `go run mage.go ...`.
func Completion(ctx context.Context, projectRoot, shell string, targetNames []string, w io.Writer) error {
	if shell != "bash" && shell != "zsh" {
		return fmt.Errorf("completion: want bash or zsh, got %q", shell)
	}
	// Warnings go to stderr: stdout is the script.
	plan, err := planAt(ctx, projectRoot, os.Stderr)
	if err != nil {
		return err
	}
	var steps []string
	for _, p := range plan {
		steps = append(steps, shellWord(p.Step))
	}
	t := strings.Join(targetNames, " ")
	s := strings.Join(steps, " ")
	if shell == "bash" {
		_, err = fmt.Fprintf(w, bashCompletion, t, s)
	} else {
		_, err = fmt.Fprintf(w, zshCompletion, t, s)
	}
	return err
}

// shellWord quotes a step name for a word list, although step names are
// made of list entries that never hold quotes or spaces.
func shellWord(s string) string {
	if strings.ContainsAny(s, " \t\n'\"\\$`") {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}

// The line is split on spaces only: bash's own words break at ":", which
// every step name and clean:images hold.
const bashCompletion = `# bash completion for the MetalK8s buildchain.
# Load it with: source <(go run mage.go completion bash)
_metalk8s_buildchain() {
	local targets='%s'
	local steps='%s'
	local line="${COMP_LINE:0:COMP_POINT}" cur="" prev
	local -a w
	read -ra w <<< "$line"
	if [[ "$line" != *" " ]]; then
		cur="${w[${#w[@]}-1]}"
		unset 'w[${#w[@]}-1]'
	fi
	prev="${w[${#w[@]}-1]}"
	local words="$targets"
	case "$prev" in
	steps|info) words="$steps" ;;
	completion) words="bash zsh" ;;
	esac
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
	# Bash replaces only what follows the last word break.
	if [[ "$COMP_WORDBREAKS" == *:* && "$cur" == *:* ]]; then
		local pre="${cur%%"${cur##*:}"}"
		COMPREPLY=("${COMPREPLY[@]#"$pre"}")
	fi
}
_metalk8s_buildchain_go() {
	if [[ "${COMP_WORDS[1]}" == run && "${COMP_WORDS[2]}" == mage.go && $COMP_CWORD -ge 3 ]]; then
		_metalk8s_buildchain
	fi
}
complete -F _metalk8s_buildchain mage
complete -p go >/dev/null 2>&1 || complete -o default -F _metalk8s_buildchain_go go
`

const zshCompletion = `#compdef mage
# zsh completion for the MetalK8s buildchain.
# Load it with: source <(go run mage.go completion zsh)
_metalk8s_buildchain() {
	local -a targets steps
	targets=(%s)
	steps=(%s)
	if [[ ${words[1]} == go ]]; then
		if [[ ${words[2]} != run || ${words[3]} != mage.go || CURRENT -lt 4 ]]; then
			_files
			return
		fi
	fi
	case ${words[CURRENT-1]} in
	steps|info) compadd -Q -- $steps ;;
	completion) compadd bash zsh ;;
	*) compadd -Q -- $targets ;;
	esac
}
compdef _metalk8s_buildchain mage
(( $+_comps[go] )) || compdef _metalk8s_buildchain go
`
