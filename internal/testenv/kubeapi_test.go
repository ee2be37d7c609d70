package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
)

// TestKubeAPI starts the real API server and lists its namespaces with the
// admin token, through the CA the harness wrote: what every installer
// test relies on.
func TestKubeAPI(t *testing.T) {
	Short(t, "starts etcd and kube-apiserver (and builds it on first use)")
	k := NeedKubeAPI(t)
	ca, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("CA file holds no certificate")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(token string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, k.URL+"/api/v1/namespaces", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	code, body := get(k.Token)
	if code != http.StatusOK {
		t.Fatalf("GET namespaces: %d %s", code, body)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ns := range list.Items {
		found = found || ns.Metadata.Name == "default"
	}
	if !found {
		t.Errorf("namespace default not served: %s", body)
	}
	if code, _ := get("not-the-token"); code != http.StatusUnauthorized {
		t.Errorf("a wrong token got %d, want 401: the server must authenticate", code)
	}
	kc, err := os.ReadFile(k.Kubeconfig)
	if err != nil || !json.Valid(kc) {
		t.Errorf("kubeconfig %s is not valid: %v", k.Kubeconfig, err)
	}
}
