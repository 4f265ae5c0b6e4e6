// Command tools is the one static binary of the node cluster's test image: the Pod sandbox's pause
// process and the small clients and servers node tests run inside Pods (Debian's static busybox wget
// segfaults in its static glibc resolver, so a Go client it is).
//
//	tools pause                 wait for SIGTERM/SIGINT (the sandbox image's entrypoint)
//	tools serve ADDR TEXT       answer every HTTP request with TEXT
//	tools get URL               print the body of GET URL; exit 1 on error
//	tools resolve NAME          print NAME's addresses from /etc/resolv.conf's servers; exit 1 on error
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: tools pause | serve ADDR TEXT | get URL | resolve NAME")
	}
	switch os.Args[1] {
	case "pause":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
	case "serve":
		need(4)
		text := os.Args[3]
		err := http.ListenAndServe(os.Args[2], http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, text)
		}))
		fail(err.Error())
	case "get":
		need(3)
		client := http.Client{Timeout: 5 * time.Second}
		res, err := client.Get(os.Args[2])
		if err != nil {
			fail(err.Error())
		}
		body, _ := io.ReadAll(res.Body)
		fmt.Print(string(body))
	case "resolve":
		need(3)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, os.Args[2])
		if err != nil {
			fail(err.Error())
		}
		fmt.Println(strings.Join(addrs, " "))
	default:
		fail("unknown command " + os.Args[1])
	}
}

func need(n int) {
	if len(os.Args) < n {
		fail("missing arguments")
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
