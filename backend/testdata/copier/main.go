// Command copier is the volume copier for backend's tests: the same
// hidden subcommands as the denv binary (which is the copier users run),
// without the rest of denv, so that backend's tests do not depend on
// cmd/denv building.
package main

import (
	"fmt"
	"os"

	"github.com/alebellu/denv/internal/copier"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "__copy-volume":
		err = copier.Command(os.Args[2:], os.Stdin, os.Stdout)
	case len(os.Args) > 1 && os.Args[1] == "__replace-volume":
		err = copier.ReplaceCommand(os.Args[2:], os.Stdin, os.Stdout)
	case len(os.Args) == 3 && os.Args[1] == "__checksum":
		err = copier.Checksum(os.Args[2], os.Stdout)
	default:
		err = fmt.Errorf("usage: copier __copy-volume|__replace-volume [--wait] SRC DST [SRC DST]... | __checksum DIR")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "copier:", err)
		os.Exit(1)
	}
}
