# zsh -f zsh-complete.zsh FPATH_DIR OUT LINE: the completions an interactive
# zsh offers at the end of LINE (TAB), one a line into OUT.  compadd is
# wrapped to record what the completion functions add.
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT='>'; fpath=(${(q)1} \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z "compadd () { builtin compadd -O __hits \"\$@\"; print -l -- \$__hits >>${(q)2}; builtin compadd \"\$@\"; }"
zpty -w z "bindkey '^I' complete-word"
zpty -w z "print -- MARK\$((1+1))"
zpty -r z out '*MARK2*'
zpty -w -n z "$3"$'\t'
# Ctrl-U drops the line; the marker says the completion is over
zpty -w z $'\x15'"print -- FIN\$((1+1))"
zpty -r z out '*FIN2*'
zpty -d z
