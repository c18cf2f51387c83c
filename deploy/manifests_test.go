package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/recon-dev/recon/config"
)

// manifest is the part of a Kubernetes object the tests look at.
type manifest struct {
	APIVersion string                `yaml:"apiVersion"`
	Kind       string                `yaml:"kind"`
	Metadata   struct{ Name string } `yaml:"metadata"`
	Data       map[string]string     `yaml:"data"`
	StringData map[string]string     `yaml:"stringData"`
	Spec       yaml.Node             `yaml:"spec"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
			FieldRef     *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
	} `yaml:"httpGet"`
}

type statefulSetSpec struct {
	Replicas int `yaml:"replicas"`
	Template struct {
		Spec struct {
			SecurityContext struct {
				RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
				RunAsUser    *int64 `yaml:"runAsUser"`
			} `yaml:"securityContext"`
			Containers []container `yaml:"containers"`
			Volumes    []struct {
				Name      string `yaml:"name"`
				ConfigMap *struct {
					Name string `yaml:"name"`
				} `yaml:"configMap"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
	VolumeClaimTemplates []struct {
		Metadata struct{ Name string } `yaml:"metadata"`
	} `yaml:"volumeClaimTemplates"`
}

// kubernetesObjects decodes every document of deploy/kubernetes/*.yaml, by
// kind; the example Secret is kept apart.
func kubernetesObjects(t *testing.T) (byKind map[string][]manifest, files map[string][]manifest) {
	t.Helper()
	paths, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no kubernetes/*.yaml")
	}
	byKind = map[string][]manifest{}
	files = map[string][]manifest{}
	for _, p := range paths {
		for i, doc := range yamlDocs(t, p) {
			var m manifest
			if err := doc.Decode(&m); err != nil {
				t.Fatalf("%s document %d: %v", p, i+1, err)
			}
			if m.Kind == "" || m.APIVersion == "" {
				t.Errorf("%s document %d: no kind or apiVersion", p, i+1)
			}
			files[filepath.Base(p)] = append(files[filepath.Base(p)], m)
			if filepath.Base(p) != "secret.example.yaml" && m.Kind != "Kustomization" {
				byKind[m.Kind] = append(byKind[m.Kind], m)
			}
		}
	}
	return byKind, files
}

func one(t *testing.T, byKind map[string][]manifest, kind string) manifest {
	t.Helper()
	if n := len(byKind[kind]); n != 1 {
		t.Fatalf("want one %s, have %d", kind, n)
	}
	return byKind[kind][0]
}

func TestKubernetesManifests(t *testing.T) {
	byKind, files := kubernetesObjects(t)
	for _, kind := range []string{"StatefulSet", "Service", "ConfigMap", "PodMonitor", "PodDisruptionBudget"} {
		one(t, byKind, kind)
	}
	if pm := one(t, byKind, "PodMonitor"); pm.APIVersion != "monitoring.coreos.com/v1" {
		t.Errorf("PodMonitor apiVersion %q", pm.APIVersion)
	}
	if _, ok := byKind["Secret"]; ok {
		t.Error("a Secret is shipped outside secret.example.yaml: secrets are created out of band")
	}

	// The kustomization lists every file but the example Secret.
	var k struct {
		Resources []string `yaml:"resources"`
	}
	kdocs := yamlDocs(t, "kubernetes/kustomization.yaml")
	if err := kdocs[0].Decode(&k); err != nil {
		t.Fatal(err)
	}
	for f := range files {
		listed := false
		for _, r := range k.Resources {
			listed = listed || r == f
		}
		switch f {
		case "kustomization.yaml":
		case "secret.example.yaml":
			if listed {
				t.Error("kustomization.yaml lists secret.example.yaml")
			}
		default:
			if !listed {
				t.Errorf("kustomization.yaml does not list %s", f)
			}
		}
	}
	for _, r := range k.Resources {
		if _, ok := files[r]; !ok {
			t.Errorf("kustomization.yaml lists %s, which does not exist", r)
		}
	}

	// The ConfigMap's config is valid recon config.
	cm := one(t, byKind, "ConfigMap")
	text, ok := cm.Data["recon.yaml"]
	if !ok {
		t.Fatal("ConfigMap has no recon.yaml")
	}
	if !strings.Contains(text, "${RECON_DIGEST_KEY}") {
		t.Error("ConfigMap's digest key does not come from ${RECON_DIGEST_KEY}")
	}
	cfg, err := config.Parse([]byte(text), func(name string) (string, bool) {
		if name == "POD_NAME" {
			return "recon-0", true
		}
		return digestKeyEnv(name)
	})
	if err != nil {
		t.Fatalf("ConfigMap recon.yaml: %v", err)
	}
	if cfg.Kafka.InstanceID != "recon-0" {
		t.Errorf("kafka.instance_id = %q, want the pod name from ${POD_NAME}", cfg.Kafka.InstanceID)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("ConfigMap recon.yaml: %v", err)
	}
	if cfg.HTTP.Listen != "0.0.0.0:8080" {
		t.Errorf("http.listen = %q, want 0.0.0.0:8080 so that probes and scrapes reach it", cfg.HTTP.Listen)
	}

	// The StatefulSet.
	sts := one(t, byKind, "StatefulSet")
	var spec statefulSetSpec
	if err := sts.Spec.Decode(&spec); err != nil {
		t.Fatal(err)
	}
	if spec.Replicas != 1 {
		t.Errorf("replicas = %d, want 1", spec.Replicas)
	}
	ps := spec.Template.Spec
	if len(ps.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(ps.Containers))
	}
	c := ps.Containers[0]
	if want := []string{"run", "-c", "/etc/recon/recon.yaml"}; len(c.Args) < 3 || strings.Join(c.Args[:3], " ") != strings.Join(want, " ") {
		t.Errorf("args = %q, want them to start with %q", c.Args, want)
	}
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("no %s httpGet probe", pr.name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path {
			t.Errorf("%s probe path %q, want %s", pr.name, pr.p.HTTPGet.Path, pr.path)
		}
		if port := pr.p.HTTPGet.Port.Value; port != "8080" && port != "http-metrics" {
			t.Errorf("%s probe port %q, want 8080", pr.name, port)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 || c.Ports[0].Name != "http-metrics" {
		t.Errorf("ports = %+v, want http-metrics 8080", c.Ports)
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Error("container has no securityContext")
	default:
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot)
		if !nonRoot {
			t.Error("runAsNonRoot is not set")
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = ps.SecurityContext.RunAsUser
		}
		if uid == nil || *uid != 65532 {
			t.Error("runAsUser is not 65532")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("readOnlyRootFilesystem is not true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation is not false")
		}
		if len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("capabilities.drop = %q, want [ALL]", sc.Capabilities.Drop)
		}
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("no %s request", r)
		}
		if c.Resources.Limits[r] == "" {
			t.Errorf("no %s limit", r)
		}
	}
	secretEnv, podName := false, false
	for _, e := range c.Env {
		if e.Name == "POD_NAME" {
			podName = e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
		}
		if e.Name == "RECON_DIGEST_KEY" {
			secretEnv = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.Value == ""
		}
	}
	if !secretEnv {
		t.Error("RECON_DIGEST_KEY does not come from a Secret")
	}
	if !podName {
		t.Error("POD_NAME (kafka.instance_id) does not come from metadata.name")
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	claims := 0
	for _, v := range spec.VolumeClaimTemplates {
		if mounts[v.Metadata.Name] == cfg.State.Dir {
			claims++
		}
	}
	if claims != 1 {
		t.Errorf("no volumeClaimTemplate mounted at the config's state dir %s (mounts %v)", cfg.State.Dir, mounts)
	}
	configMounted := false
	for _, v := range ps.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name && mounts[v.Name] == "/etc/recon" {
			configMounted = true
		}
	}
	if !configMounted {
		t.Errorf("ConfigMap %s is not mounted at /etc/recon", cm.Metadata.Name)
	}
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms int
	var user, entrypoint string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms++
			user = "" // USER is per stage; the last stage's counts
		case "USER":
			user = strings.Join(f[1:], " ")
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		}
	}
	if froms < 2 {
		t.Errorf("%d FROM stages, want a multi-stage build", froms)
	}
	if uid, _, _ := strings.Cut(user, ":"); user == "" || uid == "0" || uid == "root" {
		t.Errorf("final stage USER %q, want a non-root user", user)
	}
	if entrypoint != `["/recon"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/recon\"]", entrypoint)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version="} {
		if !strings.Contains(string(data), want) {
			t.Errorf("Dockerfile does not build with %s", want)
		}
	}
}

func TestComposeFile(t *testing.T) {
	docs := yamlDocs(t, "compose.yaml")
	if len(docs) != 1 {
		t.Fatalf("compose.yaml: %d documents", len(docs))
	}
	var c struct {
		Services map[string]struct {
			Image   string   `yaml:"image"`
			Command []string `yaml:"command"`
			Volumes []string `yaml:"volumes"`
			Configs []struct {
				Source string `yaml:"source"`
				Target string `yaml:"target"`
			} `yaml:"configs"`
		} `yaml:"services"`
		Configs map[string]struct {
			Content string `yaml:"content"`
		} `yaml:"configs"`
	}
	if err := docs[0].Decode(&c); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"broker", "recon", "prometheus", "grafana"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("no %s service", s)
		}
	}
	if got := strings.Join(c.Services["broker"].Command, " "); !strings.HasPrefix(got, "broker --listen 0.0.0.0:9092") {
		t.Errorf("broker command %q", got)
	}
	rc := c.Services["recon"]
	if len(rc.Command) < 3 || rc.Command[0] != "run" || rc.Command[1] != "-c" {
		t.Fatalf("recon command %q, want run -c FILE", rc.Command)
	}
	var cfgText string
	for _, cf := range rc.Configs {
		if cf.Target == rc.Command[2] {
			cfgText = c.Configs[cf.Source].Content
		}
	}
	if cfgText == "" {
		t.Fatalf("no compose config is mounted at %s", rc.Command[2])
	}
	// Compose turns $$ into $ before recon sees the file.
	cfg, err := config.Parse([]byte(strings.ReplaceAll(cfgText, "$$", "$")), digestKeyEnv)
	if err != nil {
		t.Fatalf("compose recon config: %v", err)
	}
	if cfg.HTTP.Listen != "0.0.0.0:8080" {
		t.Errorf("compose recon http.listen %q", cfg.HTTP.Listen)
	}

	// Every bind-mounted host path exists.
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, ".") {
				continue // a named volume
			}
			if src == "./prometheus" {
				continue // the rules directory is written separately
			}
			if _, err := os.Stat(src); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
		}
	}

	// The scrape config reaches recon's HTTP port.
	var prom struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yamlDocs(t, "prometheus.yml")[0].Decode(&prom); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	if len(targets) != 1 || !strings.HasSuffix(targets[0], ":8080") {
		t.Errorf("prometheus.yml targets %q, want recon's :8080", targets)
	}
}

var uidRef = regexp.MustCompile(`^\$\{\w+\}$`)

func TestGrafanaProvisioning(t *testing.T) {
	var paths []string
	err := filepath.WalkDir("grafana/provisioning", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, p := range paths {
		for _, doc := range yamlDocs(t, p) {
			var f struct {
				APIVersion  int `yaml:"apiVersion"`
				Datasources []struct {
					Type string `yaml:"type"`
					URL  string `yaml:"url"`
				} `yaml:"datasources"`
				Providers []struct {
					Type    string `yaml:"type"`
					Options struct {
						Path string `yaml:"path"`
					} `yaml:"options"`
				} `yaml:"providers"`
			}
			if err := doc.Decode(&f); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if f.APIVersion != 1 {
				t.Errorf("%s: apiVersion %d, want 1", p, f.APIVersion)
			}
			for _, d := range f.Datasources {
				kinds["datasource:"+d.Type] = d.URL != ""
			}
			for _, pr := range f.Providers {
				kinds["provider:"+pr.Type] = pr.Options.Path != ""
			}
		}
	}
	if !kinds["datasource:prometheus"] || !kinds["provider:file"] {
		t.Errorf("want a prometheus datasource with a url and a file dashboard provider with a path; have %v", kinds)
	}
}

func TestDashboardIsImportable(t *testing.T) {
	data, err := os.ReadFile("grafana/recon.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, schemaVersion %d", d.UID, d.SchemaVersion)
	}
	if len(d.Templating.List) == 0 || d.Templating.List[0].Type != "datasource" || d.Templating.List[0].Query != "prometheus" {
		t.Error("the first templating variable is not a prometheus datasource")
	}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || !uidRef.MatchString(p.Datasource.UID) {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
	}
}
