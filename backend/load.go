package backend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"

	"github.com/alebellu/denv/compile"
)

// ComposeFileName is the file name under which [Load] registers the compiled
// YAML in the project (and in the com.docker.compose.project.config_files
// label). The file does not need to exist; a caller that writes the compiled
// YAML there makes `docker compose -f` usable on the environment too.
const ComposeFileName = "denv.compose.yaml"

// composeModule is the module path of the Docker Compose SDK, used to find
// its version for the com.docker.compose.version label.
const composeModule = "github.com/docker/compose/v5"

// composeSDKVersion is the version of the SDK denv is built against, used
// when the build information is not available.
const composeSDKVersion = "5.6.0"

// Load parses a compose-spec YAML document through compose-go's loader, so
// that the project is validated, interpolated (with the process
// environment) and normalised exactly as `docker compose -f FILE up` would
// do, and names it projectName. Relative paths in the YAML are resolved
// against workingDir (the current directory when empty).
//
// Like `docker compose`, Load sets on every service the compose labels
// (com.docker.compose.project, .service, .version, .oneoff=False,
// .project.working_dir, .project.config_files) as CustomLabels, which
// compose puts on the containers it creates; this is what makes `docker
// compose ls` and `docker compose -p NAME ps|logs|down` see the environment.
// Networks and volumes not used by any service are dropped, as compose does.
//
// denv's descriptive labels (denv.definition, denv.environment,
// denv.source, denv.param.*: where a service came from, not how it runs)
// are moved to CustomLabels too: they still label the containers, but
// compose's config hash (compose.ServiceHash) leaves CustomLabels out, so an
// edit that only moves a service's line in its file does not recreate its
// container on `denv update`.
func Load(ctx context.Context, yaml []byte, projectName, workingDir string) (*types.Project, error) {
	if projectName == "" {
		return nil, fmt.Errorf("cannot load the compose project: empty project name")
	}
	if normalized := loader.NormalizeProjectName(projectName); normalized != projectName {
		return nil, fmt.Errorf("invalid project name %q: use lowercase letters, digits, '-' and '_', starting with a letter or digit (e.g. %q)", projectName, normalized)
	}
	if workingDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("cannot determine the working directory: %w", err)
		}
		workingDir = wd
	}
	workingDir, err := filepath.Abs(workingDir)
	if err != nil {
		return nil, fmt.Errorf("invalid working directory %q: %w", workingDir, err)
	}
	configFile := filepath.Join(workingDir, ComposeFileName)

	details := types.ConfigDetails{
		WorkingDir:  workingDir,
		ConfigFiles: []types.ConfigFile{{Filename: configFile, Content: yaml}},
		Environment: loaderEnv(workingDir),
	}
	project, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName(projectName, true)
		// The YAML is denv's own output, not a user's file: the loader's
		// guard against YAML bombs (100,000 node visits) would refuse a
		// graph of 1,600 environments.
		o.MaxNodeVisits = 100_000_000
	})
	if err != nil {
		return nil, fmt.Errorf("invalid compose project %s: %s", projectName, oneLine(err))
	}
	project.ComposeFiles = []string{configFile}

	version := composeVersion()
	for name, s := range project.Services {
		s.CustomLabels = map[string]string{
			api.ProjectLabel:     project.Name,
			api.ServiceLabel:     name,
			api.VersionLabel:     version,
			api.WorkingDirLabel:  project.WorkingDir,
			api.ConfigFilesLabel: strings.Join(project.ComposeFiles, ","),
			api.OneoffLabel:      "False",
		}
		for k, v := range s.Labels {
			if descriptiveLabel(k) {
				s.CustomLabels[k] = v
				delete(s.Labels, k)
			}
		}
		if len(s.Labels) == 0 {
			s.Labels = nil
		}
		project.Services[name] = s
	}
	return project.WithoutUnnecessaryResources(), nil
}

// DescriptiveLabel reports whether the compile label k says where a
// service came from rather than how it runs (denv.definition,
// denv.environment, denv.source, denv.param.*): not part of what an
// update compares, on any engine.
func DescriptiveLabel(k string) bool { return descriptiveLabel(k) }

// loaderEnv is the environment Load gives compose-go's loader: the
// process's, with PWD set to workingDir when it has none.
func loaderEnv(workingDir string) types.Mapping {
	env := types.NewMapping(os.Environ())
	if _, ok := env["PWD"]; !ok {
		env["PWD"] = workingDir
	}
	return env
}

// descriptiveLabel is [DescriptiveLabel].
func descriptiveLabel(k string) bool {
	switch k {
	case compile.LabelDefinition, compile.LabelEnvironment, compile.LabelSource:
		return true
	}
	return strings.HasPrefix(k, compile.LabelParamPrefix)
}

// composeVersion is the value compose itself uses for the
// com.docker.compose.version label. api.ComposeVersion is empty when compose
// is used as a library (its version is injected at link time only), so fall
// back to the SDK's module version.
func composeVersion() string {
	if api.ComposeVersion != "" {
		return api.ComposeVersion
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == composeModule {
				if dep.Replace != nil {
					dep = dep.Replace
				}
				if v := strings.TrimPrefix(dep.Version, "v"); v != "" && v != "(devel)" {
					return v
				}
			}
		}
	}
	return composeSDKVersion
}

// oneLine flattens a possibly multi-line error message into one line.
func oneLine(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	parts := lines[:0]
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// OneLine is err's message on one line, for errors of the Docker SDK that
// span several: what a runtime subpackage reports.
func OneLine(err error) string { return oneLine(err) }
