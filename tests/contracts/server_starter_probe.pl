#!/usr/bin/perl
# server_starter_probe: what Server::Starter's own parser (server_ports) finds in
# SERVER_STARTER_PORT, and what each descriptor it names is. Writes REPORT.<pid>:
#   pid <pid>
#   port <key> <fd>                                            (sorted by fd)
#   fd <n> name - address <getsockname> listening <0|1>
#   server_starter_probe REPORT
use strict;
use warnings;
use Server::Starter qw(server_ports);
use Socket qw(:all);

sub address_of {
    my ($fh) = @_;
    my $addr = getsockname($fh) or return "?";
    my $family = sockaddr_family($addr);
    if ($family == AF_INET) {
        my ($port, $host) = unpack_sockaddr_in($addr);
        return inet_ntop(AF_INET, $host) . ":$port";
    }
    if ($family == AF_INET6) {
        my ($port, $host) = unpack_sockaddr_in6($addr);
        return "[" . inet_ntop(AF_INET6, $host) . "]:$port";
    }
    if ($family == AF_UNIX) {
        my $path = unpack_sockaddr_un($addr);
        $path =~ s/\0.*//s;
        return "unix:$path";
    }
    return "?";
}

my $report = shift or die "usage: server_starter_probe REPORT\n";
open(my $out, '>', "$report.$$") or die "$report.$$: $!\n";
print $out "pid $$\n";
my $ports = server_ports();
for my $key (sort { $ports->{$a} <=> $ports->{$b} } keys %$ports) {
    print $out "port $key $ports->{$key}\n";
}
for my $key (sort { $ports->{$a} <=> $ports->{$b} } keys %$ports) {
    my $fd = $ports->{$key};
    open(my $fh, '+<&=', $fd) or die "fd $fd: $!\n";
    my $accepting = getsockopt($fh, SOL_SOCKET, SO_ACCEPTCONN);
    my $listening = defined $accepting && unpack("i", $accepting) ? 1 : 0;
    print $out "fd $fd name - address " . address_of($fh) . " listening $listening\n";
}
close($out);
