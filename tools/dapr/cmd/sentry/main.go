// Command sentry runs Dapr's own sentry entry point, built from the pinned module.
package main

import "github.com/dapr/dapr/cmd/sentry/app"

func main() {
	app.Run()
}
