// Command example-solution-ui is the UI of the example Solution (docs
// chapter 12.1.1): a static page, embedded in the binary, describing the
// Solution and how to create an Example resource.
package main

import (
	"embed"
	"fmt"
	"io/fs"
	"log"
	"net/http"
	"os"
	"time"
)

//go:embed static
var static embed.FS

func main() {
	addr := os.Getenv("LISTEN_ADDRESS")
	if addr == "" {
		addr = ":8080"
	}
	root, err := fs.Sub(static, "static")
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(root))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("serving on %s", addr)
	log.Fatal(srv.ListenAndServe())
}
