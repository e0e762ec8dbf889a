// stepclient_ssh drives Cirrus's SSH routes with step-ca's own Go client library
// (smallstep/certificates/ca, Debian's 0.19.0 sources), the way `step ssh certificate` and
// `step ssh config` do: decrypt the provisioner key, mint an SSH token (the `step.ssh` claim),
// read /ssh/roots, sign a user and a host certificate, check them with golang.org/x/crypto/ssh's
// CertChecker against the CA keys, ask /ssh/check-host and /ssh/config. Prints one JSON object.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/ca"
	"golang.org/x/crypto/ssh"
)

func fail(step string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
	os.Exit(1)
}

func newKey() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		fail("key", err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		fail("ssh key", err)
	}
	return key
}

func main() {
	if len(os.Args) != 6 {
		fail("usage", fmt.Errorf("stepclient_ssh CA_URL ROOT PROVISIONER KID PASSWORD_FILE"))
	}
	caURL, root, name, kid, pwFile := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		fail("password", err)
	}
	password := []byte(strings.TrimRight(string(pw), "\r\n"))
	out := map[string]interface{}{}

	p, err := ca.NewProvisioner(name, kid, caURL, password, ca.WithRootFile(root))
	if err != nil {
		fail("provisioner (encrypted key)", err)
	}
	client, err := ca.NewClient(caURL, ca.WithRootFile(root))
	if err != nil {
		fail("client", err)
	}
	roots, err := client.SSHRoots()
	if err != nil {
		fail("ssh roots", err)
	}
	if len(roots.UserKeys) != 1 || len(roots.HostKeys) != 1 {
		fail("ssh roots", fmt.Errorf("want one user and one host key, got %d and %d", len(roots.UserKeys), len(roots.HostKeys)))
	}
	userCA, hostCA := roots.UserKeys[0].PublicKey, roots.HostKeys[0].PublicKey

	token, err := p.SSHToken("user", "alice@example.com", []string{"alice", "ops"})
	if err != nil {
		fail("ssh token", err)
	}
	userKey := newKey()
	signed, err := client.SSHSign(&api.SSHSignRequest{
		PublicKey: userKey.Marshal(), OTT: token, CertType: "user", KeyID: "alice@example.com",
		Principals: []string{"alice"},
	})
	if err != nil {
		fail("ssh sign (user)", err)
	}
	cert := signed.Certificate.Certificate
	checker := &ssh.CertChecker{
		IsUserAuthority: func(auth ssh.PublicKey) bool { return bytes.Equal(auth.Marshal(), userCA.Marshal()) },
		IsHostAuthority: func(auth ssh.PublicKey, _ string) bool { return bytes.Equal(auth.Marshal(), hostCA.Marshal()) },
	}
	if err := checker.CheckCert("alice", cert); err != nil {
		fail("user certificate check", err)
	}
	if !bytes.Equal(cert.Key.Marshal(), userKey.Marshal()) {
		fail("user certificate key", fmt.Errorf("not the key sent"))
	}
	out["userSerial"] = cert.Serial
	out["userPrincipals"] = cert.ValidPrincipals
	out["userKeyId"] = cert.KeyId
	out["userExtensions"] = len(cert.Permissions.Extensions)

	hostToken, err := p.SSHToken("host", "web1.internal", []string{"web1.internal"})
	if err != nil {
		fail("ssh token (host)", err)
	}
	hostSigned, err := client.SSHSign(&api.SSHSignRequest{PublicKey: newKey().Marshal(), OTT: hostToken, CertType: "host"})
	if err != nil {
		fail("ssh sign (host)", err)
	}
	hostCert := hostSigned.Certificate.Certificate
	if err := checker.CheckCert("web1.internal", hostCert); err != nil {
		fail("host certificate check", err)
	}
	if hostCert.CertType != ssh.HostCert {
		fail("host certificate type", fmt.Errorf("got %d", hostCert.CertType))
	}
	out["hostValidity"] = hostCert.ValidBefore - hostCert.ValidAfter

	exists, err := client.SSHCheckHost("web1.internal", "")
	if err != nil {
		fail("check host", err)
	}
	out["checkHost"] = exists.Exists
	config, err := client.SSHConfig(&api.SSHConfigRequest{Type: "user", Data: map[string]string{"StepPath": "/home/a/.step"}})
	if err != nil {
		fail("ssh config", err)
	}
	out["userTemplates"] = len(config.UserTemplates)

	// A token for other principals than the request's is refused with step-ca's error.
	bad, _ := p.SSHToken("user", "bob", []string{"bob"})
	if _, err := client.SSHSign(&api.SSHSignRequest{PublicKey: newKey().Marshal(), OTT: bad, Principals: []string{"root"}}); err == nil {
		fail("refusal", fmt.Errorf("principals outside the token were signed"))
	} else {
		out["refused"] = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("output", err)
	}
}
