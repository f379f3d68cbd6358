package resolve_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alebellu/denv/resolve"
)

// paramFiles is a root with a required and a defaulted parameter that
// passes both on to an included definition.
var paramFiles = map[string]string{
	"app.denv":    "PARAM pg = \"16\"\nPARAM db_password\nENV pg-env WITH version=${pg}, password=${db_password}\nIMAGE ex/app:${pg} LINK pg-env\n",
	"pg-env.denv": "PARAM version\nPARAM password\nIMAGE ex/db:${version} AS db SET P=${password} PORT ${version}0:5432\nEXPOSE db\n",
}

func resolveParams(t *testing.T, opts resolve.Options) (*resolve.Graph, error) {
	t.Helper()
	dir := writeFiles(t, paramFiles)
	opts.WorkDir = dir
	return resolve.New(opts).Resolve(context.Background(), filepath.Join(dir, "app.denv"))
}

func TestParamsFromSet(t *testing.T) {
	g, err := resolveParams(t, resolve.Options{Params: map[string]string{"pg": "17", "db_password": "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Root.Services[0].Image; got != "ex/app:17" {
		t.Errorf("root image = %q, want ex/app:17 (--set overrides the default)", got)
	}
	db := g.Envs[1].Services[0]
	if db.Image != "ex/db:17" || db.Environ[0].Value != "pw" || db.Ports[0].Host != 170 {
		t.Errorf("included service = %s %+v %+v, want the values passed by WITH", db.Image, db.Environ, db.Ports)
	}
	var shown []string
	for _, p := range g.Root.Params {
		shown = append(shown, p.Name+"="+p.Shown())
	}
	if got := strings.Join(shown, " "); got != "pg=17 db_password=***" {
		t.Errorf("root params shown as %q", got)
	}
}

func TestParamsErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		set  map[string]string
		want []string
	}{
		{"missing", nil, []string{`app.denv:2:1: parameter "db_password" of app has no value: pass --set db_password=VALUE`}},
		{"unknown", map[string]string{"db_password": "x", "pgg": "1", "zz": "2"}, []string{
			`app.denv: --set pgg: definition app (app.denv) has no parameter "pgg" (its parameters: pg, db_password)`,
			`app.denv: --set zz: definition app`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := resolveParams(t, resolve.Options{Params: c.set})
			if err == nil {
				t.Fatal("resolved without error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks\n%s", err, w)
				}
			}
		})
	}
}

// TestParamsOptional is what denv add checks: no values, required ones
// allowed to stay unset, but an undeclared use still an error.
func TestParamsOptional(t *testing.T) {
	g, err := resolveParams(t, resolve.Options{ParamsOptional: true})
	if err != nil {
		t.Fatal(err)
	}
	if p := g.Root.Params[1]; !p.Unset || p.Shown() != "" {
		t.Errorf("db_password = %+v, want unset", p)
	}
	if v := g.Envs[1].Services[0].Environ[0].Value; v != "${password}" {
		t.Errorf("a value made of an unset parameter is %q, want it as written", v)
	}
	dir := writeFiles(t, map[string]string{"a.denv": "PARAM x\nIMAGE ex/a:${x} SET A=${y}\n"})
	_, err = resolve.New(resolve.Options{WorkDir: dir, ParamsOptional: true}).Resolve(context.Background(), filepath.Join(dir, "a.denv"))
	if err == nil || !strings.Contains(err.Error(), `a.denv:2:23: ${y}: a declares no parameter "y"`) {
		t.Errorf("undeclared use: %v", err)
	}
}

func TestSecret(t *testing.T) {
	for name, want := range map[string]bool{"password": true, "DB_PASSWORD": true, "api_token": true, "ssh_key": true, "secret": true, "keyring": true, "version": false, "pg": false} {
		if got := resolve.Secret(name); got != want {
			t.Errorf("Secret(%q) = %v", name, got)
		}
	}
}
