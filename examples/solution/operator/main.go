// Command example-solution-operator is the Operator of the example Solution
// (docs chapter 12.3): it watches the Example custom resources of its
// namespace and records in each one's status that it was observed.
//
// It talks to the API server over plain HTTPS with the in-cluster service
// account, rather than with client-go, so that the example builds from the
// buildchain's own module with no extra dependency and no network.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const (
	group    = "example-solution.metalk8s.scality.com"
	version  = "v1alpha1"
	resource = "examples"
	saDir    = "/var/run/secrets/kubernetes.io/serviceaccount"
)

type example struct {
	Metadata struct {
		Name       string `json:"name"`
		Generation int64  `json:"generation"`
	} `json:"metadata"`
	Spec struct {
		Replicas int    `json:"replicas"`
		Message  string `json:"message"`
	} `json:"spec"`
	Status struct {
		ObservedGeneration int64 `json:"observedGeneration"`
	} `json:"status"`
}

type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient() (*client, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, fmt.Errorf("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset: not running in a cluster")
	}
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s/ca.crt holds no certificate", saDir)
	}
	return &client{
		base:  "https://" + net.JoinHostPort(host, port),
		token: strings.TrimSpace(string(token)),
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		}},
	}, nil
}

func (c *client) do(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// reconcile marks every Example whose spec changed since it was last seen.
func reconcile(ctx context.Context, c *client, ns string) error {
	base := fmt.Sprintf("/apis/%s/%s/namespaces/%s/%s", group, version, ns, resource)
	var list struct {
		Items []example `json:"items"`
	}
	if err := c.do(ctx, http.MethodGet, base, "", nil, &list); err != nil {
		return err
	}
	for _, ex := range list.Items {
		if ex.Status.ObservedGeneration == ex.Metadata.Generation {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{
			"observedGeneration": ex.Metadata.Generation,
			"phase":              "Observed",
		}})
		if err := c.do(ctx, http.MethodPatch, base+"/"+ex.Metadata.Name+"/status", "application/merge-patch+json", patch, nil); err != nil {
			return err
		}
		log.Printf("example %s/%s: generation %d observed (replicas %d, message %q)", ns, ex.Metadata.Name, ex.Metadata.Generation, ex.Spec.Replicas, ex.Spec.Message)
	}
	return nil
}

func main() {
	ns := os.Getenv("WATCH_NAMESPACE")
	if ns == "" {
		log.Fatal("WATCH_NAMESPACE is unset: the Operator only manages its own namespace")
	}
	c, err := newClient()
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: ":8081", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			log.Fatal(err)
		}
	}()

	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		if err := reconcile(ctx, c, ns); err != nil && ctx.Err() == nil {
			log.Printf("reconcile: %v", err)
		}
		select {
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
			return
		case <-tick.C:
		}
	}
}
