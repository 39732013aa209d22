// Command pause is the dev cluster's sandbox process: the first process of
// every pod, holding its namespaces. It sleeps until SIGINT or SIGTERM and, as
// PID 1 of the pod, reaps any orphan that is handed to it. It goes into the
// locally made pause image (no registry is reachable for the official one).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for received := range signals {
		if received != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
