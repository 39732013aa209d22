// Command smoke is the dev cluster tier's workload (tests/k8s): an HTTP server
// on :8080 that answers / with the pod's hostname and /resolve?name=N with the
// addresses the pod's own resolver finds for N. Built without cgo, it uses Go's
// resolver, which reads the resolv.conf the kubelet wrote for the pod: CoreDNS
// through the kube-dns Service, with the cluster's search domains.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		host, _ := os.Hostname()
		fmt.Fprintln(w, host)
	})
	http.HandleFunc("/resolve", func(w http.ResponseWriter, r *http.Request) {
		addresses, err := net.DefaultResolver.LookupHost(r.Context(), r.URL.Query().Get("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(addresses)
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}
