// Command config-check decodes the files tailscale-gateway writes into a proxy's config Secret the way
// the proxy image (containerboot and tailscaled, built from the same tailscale.com module version)
// decodes them, so a test can prove the proxy accepts every file the operator writes. It is linked
// against tailscale's own packages, so it answers with tailscale's own parsers and error messages;
// the decode paths were read in tailscale.com v1.102.2:
//
//   - cap-<N>.hujson: conffile.Load, which containerboot calls when it validates its settings
//     (cmd/containerboot/settings.go) and tailscaled when it starts with --config: HuJSON
//     standardized, then decoded strictly (unknown fields rejected) into ipn.ConfigVAlpha.
//   - serve-config: containerboot's readServeConfig (cmd/containerboot/serve.go): ${TS_CERT_DOMAIN}
//     substituted, json.Unmarshal into ipn.ServeConfig; an empty file is skipped.
//   - egress-services: containerboot's egressProxy.getConfigs (cmd/containerboot/egressservices.go):
//     json.Unmarshal into egressservices.Configs; an empty file is skipped.
//
// The last two decodes are lenient: a field the proxy does not know is dropped silently, which would
// silently lose configuration. So after the proxy's own decode each of them is decoded once more with
// unknown fields disallowed, and such a field is reported as an error too.
//
// Usage: config-check FILE...   (the kind of each file comes from its base name, as in the Secret)
//
//	config-check -version    (JSON: the tailscale.com version and its capability version)
//	config-check -app VALUE... (whether tailscaled keeps each TS_INTERNAL_APP value as Hostinfo.App:
//	                            envknob.App() returns only values on its allow-list, others are dropped
//	                            silently, so a proxy would report no app to control)
//
// Exit status: 0 all files accepted; 1 some file rejected (each named on stderr with the parse error);
// 2 usage error or a file name of no known kind, so a new kind of file cannot go unchecked.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"

	"tailscale.com/envknob"
	"tailscale.com/ipn"
	"tailscale.com/ipn/conffile"
	"tailscale.com/kube/egressservices"
	"tailscale.com/tailcfg"
)

// certDomain stands in for the DNS name containerboot substitutes for ${TS_CERT_DOMAIN}.
const certDomain = "proxy.tailnet.ts.net"

var capFile = regexp.MustCompile(`^cap-[0-9]+\.hujson$`)

func main() {
	args := os.Args[1:]
	if len(args) == 1 && args[0] == "-version" {
		printVersion()
		return
	}
	if len(args) > 1 && args[0] == "-app" {
		os.Exit(checkApps(args[1:]))
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: config-check FILE... | config-check -version | config-check -app VALUE...")
		os.Exit(2)
	}
	status := 0
	for _, path := range args {
		kind, err := check(path)
		switch {
		case err == errUnknownKind:
			fmt.Fprintf(os.Stderr, "%s: no known kind of proxy config file (want cap-<N>.hujson, %s or %s)\n",
				path, "serve-config", egressservices.KeyEgressServices)
			status = 2
		case err != nil:
			fmt.Fprintf(os.Stderr, "%s: rejected as %s: %v\n", path, kind, err)
			if status == 0 {
				status = 1
			}
		default:
			fmt.Printf("ok %s (%s)\n", path, kind)
		}
	}
	os.Exit(status)
}

var errUnknownKind = errors.New("unknown kind")

func check(path string) (kind string, err error) {
	name := filepath.Base(path)
	switch {
	case capFile.MatchString(name):
		kind = "ipn.ConfigVAlpha (conffile.Load)"
		_, err = conffile.Load(path)
		return kind, err
	case name == "serve-config":
		kind = "ipn.ServeConfig"
		return kind, decodeLikeContainerboot(path, &ipn.ServeConfig{}, &ipn.ServeConfig{}, true)
	case name == egressservices.KeyEgressServices:
		kind = "egressservices.Configs"
		return kind, decodeLikeContainerboot(path, &egressservices.Configs{}, &egressservices.Configs{}, false)
	}
	return "", errUnknownKind
}

// decodeLikeContainerboot reads path as containerboot does (an empty file means none), decodes it
// into lenient as containerboot does, then into strict with unknown fields disallowed.
func decodeLikeContainerboot(path string, lenient, strict any, substituteCertDomain bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	if substituteCertDomain {
		data = bytes.ReplaceAll(data, []byte("${TS_CERT_DOMAIN}"), []byte(certDomain))
	}
	if err := json.Unmarshal(data, lenient); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(strict); err != nil {
		return fmt.Errorf("the proxy accepts it but would silently drop part of it: %w", err)
	}
	return nil
}

// checkApps sets TS_INTERNAL_APP to each value in turn and asks tailscaled's own envknob.App (which
// reads the variable on every call), the function cmd/tailscaled uses to set Hostinfo.App.
func checkApps(values []string) int {
	status := 0
	for _, value := range values {
		os.Setenv("TS_INTERNAL_APP", value)
		if got := envknob.App(); got != value {
			fmt.Fprintf(os.Stderr, "TS_INTERNAL_APP=%s: dropped by tailscaled (envknob.App() = %q)\n", value, got)
			status = 1
			continue
		}
		fmt.Printf("ok TS_INTERNAL_APP=%s\n", value)
	}
	return status
}

func printVersion() {
	version := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "tailscale.com" {
				version = dep.Version
			}
		}
	}
	out, _ := json.Marshal(map[string]any{
		"tailscale":         version,
		"capabilityVersion": int(tailcfg.CurrentCapabilityVersion),
	})
	fmt.Println(string(out))
}
