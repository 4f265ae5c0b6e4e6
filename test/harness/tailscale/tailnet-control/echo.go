package main

// `tailnet-control echo`: the HTTP and TCP servers behind the tests' tailnet devices. It runs
// inside a device's network namespace (a userspace tailscaled forwards its tailnet address to the
// namespace's loopback), so it is a subcommand of a binary that is already built rather than a
// Bun process per device.

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
)

func echoMain(args []string) {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	name := fs.String("name", "echo", "name this server answers with")
	httpAddr := fs.String("http", "", "HTTP listen address: answers JSON {name, method, path, host, headers, remote}")
	tcpAddr := fs.String("tcp", "", "TCP listen address: answers each line with \"<name>: <line>\"")
	fs.Parse(args)
	if *httpAddr == "" && *tcpAddr == "" {
		log.Fatal("echo: give -http and/or -tcp")
	}
	ready := map[string]string{}
	if *httpAddr != "" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			log.Fatalf("echo: %v", err)
		}
		ready["http"] = ln.Addr().String()
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			headers := map[string]string{}
			for k, v := range r.Header {
				headers[strings.ToLower(k)] = strings.Join(v, ", ")
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"name": *name, "method": r.Method, "path": r.URL.RequestURI(), "host": r.Host,
				"headers": headers, "remote": r.RemoteAddr,
			})
		}))
	}
	if *tcpAddr != "" {
		ln, err := net.Listen("tcp", *tcpAddr)
		if err != nil {
			log.Fatalf("echo: %v", err)
		}
		ready["tcp"] = ln.Addr().String()
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					sc := bufio.NewScanner(conn)
					for sc.Scan() {
						fmt.Fprintf(conn, "%s: %s\n", *name, sc.Text())
					}
				}()
			}
		}()
	}
	b, _ := json.Marshal(ready)
	os.Stdout.Write(append(b, '\n'))
	select {}
}
