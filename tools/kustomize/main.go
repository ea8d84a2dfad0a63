// gitops-kustomize: a folder of a config repository rendered as Flux's kustomize-controller
// renders it, printed as a YAML stream on stdout.
//
// It is Flux's own code (github.com/fluxcd/pkg/kustomize), not a copy of its rules: a folder
// without a kustomization gets the one Flux generates (every manifest below it, with subfolders
// that carry their own kustomization as bases), and the build runs on a filesystem that denies
// anything outside the repository root, with kustomize's exec and container plugins off.
//
//	gitops-kustomize -root REPO -path DIR [-remote-bases] [-helm PATH -kube-version V -api-versions A,B]
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fluxcd/pkg/kustomize"
	securefs "github.com/fluxcd/pkg/kustomize/filesys"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// helmEnv names the real helm when this binary stands in for it (see offline).
const helmEnv = "GITOPS_KUSTOMIZE_HELM"

func main() {
	if real := os.Getenv(helmEnv); real != "" {
		helmWithoutPulls(real)
		return
	}
	root := flag.String("root", "", "the repository's checkout: nothing outside it is read")
	path := flag.String("path", ".", "the folder to build, relative to -root")
	remote := flag.Bool("remote-bases", false, "allow remote bases (git and HTTP)")
	helm := flag.String("helm", "", "inflate helmCharts with this helm binary (off when empty, as in Flux)")
	kubeVersion := flag.String("kube-version", "", "the Kubernetes version helmCharts are rendered for")
	apiVersions := flag.String("api-versions", "", "comma-separated API versions the cluster serves, for helmCharts")
	showVersion := flag.Bool("version", false, "print the version")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	if err := run(*root, *path, *remote, *helm, *kubeVersion, *apiVersions); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(root, path string, remote bool, helm, kubeVersion, apiVersions string) error {
	if root == "" {
		return fmt.Errorf("-root is required")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	dir := filepath.Join(abs, path)
	if !remote {
		if helm, err = offline(helm); err != nil {
			return err
		}
	}
	// The kustomization Flux would generate for a plain folder is written into the checkout
	// (a scratch copy of the commit), exactly as kustomize-controller does before it builds.
	generator := kustomize.NewGenerator(abs, unstructured.Unstructured{Object: map[string]interface{}{}})
	if _, err := generator.WriteFile(dir); err != nil {
		return fmt.Errorf("generating a kustomization for %s: %w", path, err)
	}
	if err := trackOrigins(abs, dir); err != nil {
		return err
	}
	var resources resmap.ResMap
	if helm == "" {
		resources, err = kustomize.SecureBuild(abs, dir, remote)
	} else {
		resources, err = buildWithHelm(abs, dir, remote, helm, kubeVersion, apiVersions)
	}
	if err != nil {
		return err
	}
	out, err := resources.AsYaml()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}

// trackOrigins asks kustomize to annotate each object with the file it came from
// (config.kubernetes.io/origin), so errors can name it. Only the top kustomization's
// buildMetadata decides that, and the checkout is a scratch copy: it is edited there, through
// the same filesystem that refuses anything outside the root.
func trackOrigins(root, dir string) error {
	fs, err := securefs.MakeFsOnDiskSecure(root)
	if err != nil {
		return err
	}
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		path := filepath.Join(dir, name)
		if !fs.Exists(path) || fs.IsDir(path) {
			continue
		}
		data, err := fs.ReadFile(path)
		if err != nil {
			return err
		}
		var kustomization map[string]interface{}
		if err := yaml.Unmarshal(data, &kustomization); err != nil || kustomization == nil {
			return nil // kustomize itself reports what is wrong with it
		}
		metadata, _ := kustomization["buildMetadata"].([]interface{})
		for _, option := range metadata {
			if option == "originAnnotations" {
				return nil
			}
		}
		kustomization["buildMetadata"] = append(metadata, "originAnnotations")
		out, err := yaml.Marshal(kustomization)
		if err != nil {
			return err
		}
		return fs.WriteFile(path, out)
	}
	return nil
}

// buildWithHelm is Flux's SecureBuild with one difference the stack asked for: the built-in
// HelmChartInflationGenerator on (kustomize's `--enable-helm`), running the pinned helm. Exec and
// container plugins stay off; the filesystem still refuses anything outside the root.
func buildWithHelm(root, dir string, remote bool, helm, kubeVersion, apiVersions string) (resmap.ResMap, error) {
	var fs, err = securefs.MakeFsOnDiskSecure(root)
	if remote {
		fs, err = securefs.MakeFsOnDiskSecureBuild(root)
	}
	if err != nil {
		return nil, err
	}
	plugins := kustypes.MakePluginConfig(kustypes.PluginRestrictionsBuiltinsOnly, kustypes.BploUseStaticallyLinked)
	plugins.HelmConfig = kustypes.HelmConfig{Enabled: true, Command: helm, KubeVersion: kubeVersion}
	if apiVersions != "" {
		plugins.HelmConfig.ApiVersions = strings.Split(apiVersions, ",")
	}
	options := &krusty.Options{LoadRestrictions: kustypes.LoadRestrictionsNone, PluginConfig: plugins}
	return krusty.MakeKustomizer(options).Run(fs, dir)
}

// offline keeps a build from reaching any host, which kustomize would do for a remote base (the
// git on PATH clones it, and Flux's filesystem refuses it only after the fetch), a remote file
// (http.DefaultTransport) or a helmCharts entry not vendored in the repo (`helm pull`). Helm then
// runs through this binary, which refuses pulls (helmWithoutPulls). It returns that helm.
func offline(helm string) (string, error) {
	http.DefaultTransport = refusing{}
	if err := os.Setenv("PATH", ""); err != nil {
		return "", err
	}
	if helm == "" {
		return "", nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	return self, os.Setenv(helmEnv, helm)
}

type refusing struct{}

func (refusing) RoundTrip(request *http.Request) (*http.Response, error) {
	return nil, errors.New("remote resources are off (gitops:kustomizeRemoteBases turns them on): " +
		request.URL.Redacted())
}

// helmWithoutPulls runs the real helm for anything but a pull.
func helmWithoutPulls(real string) {
	if len(os.Args) > 1 && os.Args[1] == "pull" {
		fmt.Fprintln(os.Stderr, "a helmCharts chart that is not in the repo is fetched only with "+
			"gitops:kustomizeRemoteBases: vendor it under the kustomization's charts/ folder")
		os.Exit(1)
	}
	args := append([]string{real}, os.Args[1:]...)
	if err := syscall.Exec(real, args, os.Environ()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
