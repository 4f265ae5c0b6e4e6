// Command tailnet-control is the tests' Tailscale control server: tailscale.com's own testcontrol,
// an in-process DERP relay and STUN server, and an admin HTTP API of ours that the fake Tailscale
// API (test/harness/fake-tailscale) delegates to, so the keys it mints are the only ones control
// accepts and the devices it lists are the nodes control has. It models what the operator's proxies
// need: auth keys with tags, ephemeral and reusable properties; device deletion; Tailscale Services
// (the service-host capability with the service's addresses, the VIP routed to a host only while
// that host reports the service active over c2n); MagicDNS names and cert domains.
//
// Usage: tailnet-control [-listen HOST] [-admin-listen HOST:PORT] [-domain DOMAIN] [-device-approval]
// It binds free ports and prints one JSON line on stdout once serving:
// {"control":"http://HOST:P","admin":"http://127.0.0.1:P","derp":"https://HOST:P","stun":"HOST:P"}.
// `tailnet-control echo -name N -http ADDR -tcp ADDR` is a small HTTP/TCP echo server for devices.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"tailscale.com/derp/derpserver"
	"tailscale.com/net/stunserver"
	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"
	"tailscale.com/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "echo" {
		echoMain(os.Args[2:])
		return
	}
	listen := flag.String("listen", "127.0.0.1", "IP address to bind control, DERP and STUN on (free ports); nodes must reach it")
	adminListen := flag.String("admin-listen", "127.0.0.1:0", "address of the admin API")
	domain := flag.String("domain", "tail-fake.ts.net", "MagicDNS domain of the tailnet")
	ephemeralTimeout := flag.Duration("ephemeral-timeout", 30*time.Second, "an ephemeral node offline this long is removed")
	deviceApproval := flag.Bool("device-approval", false, "device approval on: a node joining with a key that is not preauthorized waits (NeedsMachineAuth) until POST /devices/{id}/authorized")
	verbose := flag.Bool("v", false, "log testcontrol's chatter too")
	showVersion := flag.Bool("version", false, "print the tailscale.com version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("{\"tailscale\":%q,\"capabilityVersion\":%d}\n", version.Long(), tailcfg.CurrentCapabilityVersion)
		return
	}
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetOutput(os.Stderr)
	host := *listen
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		log.Fatalf("-listen must be one IP address nodes can reach (it goes into the DERP map), got %q", host)
	}

	// DERP over TLS (the DERP map node says InsecureForTests) and STUN, as tstest/integration's
	// RunDERPAndSTUN sets them up.
	derpLn, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		log.Fatalf("DERP listen: %v", err)
	}
	// The relay's own log (connections, duplicate clients) goes to control's log, which tests print
	// when a device cannot be reached.
	d := derpserver.New(key.NewNode(), log.New(os.Stderr, "derp: ", log.Ltime|log.Lmicroseconds).Printf)
	derpSrv := httptest.NewUnstartedServer(derpserver.AddWebSocketSupport(d, derpserver.Handler(d)))
	derpSrv.Listener.Close()
	derpSrv.Listener = derpLn
	derpSrv.Config.ErrorLog = log.New(os.Stderr, "derp: ", log.Ltime)
	derpSrv.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	derpSrv.StartTLS()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stun := stunserver.New(ctx)
	if err := stun.Listen(net.JoinHostPort(host, "0")); err != nil {
		log.Fatalf("STUN listen: %v", err)
	}
	go stun.Serve()
	stunPort := stun.LocalAddr().(*net.UDPAddr).Port
	derpPort := derpLn.Addr().(*net.TCPAddr).Port

	controlLn, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		log.Fatalf("control listen: %v", err)
	}
	controlURL := "http://" + controlLn.Addr().String()
	logf := logger.Discard
	if *verbose {
		logf = log.New(os.Stderr, "testcontrol: ", log.Ltime|log.Lmicroseconds).Printf
	}
	s := &testcontrol.Server{
		Logf: logf,
		DERPMap: &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{1: {
			RegionID:   1,
			RegionCode: "test",
			Nodes: []*tailcfg.DERPNode{{
				Name:             "t1",
				RegionID:         1,
				HostName:         host,
				IPv4:             host,
				IPv6:             "none",
				STUNPort:         stunPort,
				DERPPort:         derpPort,
				InsecureForTests: true,
				STUNTestIP:       host,
			}},
		}}},
		ExplicitBaseURL: controlURL,
		MagicDNSDomain:  *domain,
		DNSConfig:       &tailcfg.DNSConfig{Proxied: true, Domains: []string{*domain}},
		AllOnline:       true,
	}
	c := newControl(s, *domain, *ephemeralTimeout)
	c.deviceApproval = *deviceApproval
	c.derp = d

	adminLn, err := net.Listen("tcp", *adminListen)
	if err != nil {
		log.Fatalf("admin listen: %v", err)
	}
	controlSrv := &http.Server{Handler: s, ErrorLog: log.New(os.Stderr, "control: ", log.Ltime)}
	go controlSrv.Serve(controlLn)
	adminSrv := &http.Server{Handler: c.adminHandler()}
	go adminSrv.Serve(adminLn)
	go c.reapEphemeral(ctx)

	ready, _ := json.Marshal(map[string]string{
		"control": controlURL,
		"admin":   "http://" + adminLn.Addr().String(),
		"derp":    "https://" + net.JoinHostPort(host, strconv.Itoa(derpPort)),
		"stun":    net.JoinHostPort(host, strconv.Itoa(stunPort)),
	})
	os.Stdout.Write(append(ready, '\n'))
	log.Printf("serving control %s, admin %s, DERP :%d, STUN :%d, domain %s", controlURL, adminLn.Addr(), derpPort, stunPort, *domain)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	cancel()
	controlSrv.Close()
	adminSrv.Close()
	derpSrv.Close()
	d.Close()
}
