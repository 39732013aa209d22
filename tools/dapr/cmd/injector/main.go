// Command injector runs Dapr's own injector entry point, built from the pinned module.
package main

import "github.com/dapr/dapr/cmd/injector/app"

func main() {
	app.Run()
}
