#!/usr/bin/perl
# A Perl FCGI (libfcgi-perl) application for the integration tests.
#   perl_app.pl                    socket on fd 0 (started by a process manager)
#   perl_app.pl /path/app.sock     listen on a unix socket (FCGI::OpenSocket)
#   perl_app.pl 127.0.0.1:9000     listen on TCP
# Answers "Hello from perl" followed by the request's environment, sorted, NAME=VALUE per
# line, and BODY_BYTES=<n> after reading CONTENT_LENGTH bytes of request body.
use strict;
use warnings;
use FCGI;
use IO::Handle;

my $socket = 0;
if (@ARGV) {
    $socket = FCGI::OpenSocket($ARGV[0], 16) or die "perl_app: cannot open $ARGV[0]: $!\n";
}
my %env;
my ($in, $out, $err) = (IO::Handle->new, IO::Handle->new, IO::Handle->new);
my $request = FCGI::Request($in, $out, $err, \%env, $socket);
my $count = 0;

while ($request->Accept() >= 0) {
    $count++;
    my $len  = $env{CONTENT_LENGTH} || 0;
    my $body = '';
    while ($len > length $body) {
        my $got = read($in, $body, $len - length $body, length $body);
        last unless $got;
    }
    print $out "Content-Type: text/plain\r\nX-App: perl\r\n\r\n";
    print $out "Hello from perl\n";
    print $out "$_=$env{$_}\n" for sort keys %env;
    print $out "BODY_BYTES=" . length($body) . "\n";
    print $out "APP_PID=$$\nAPP_SERVED=$count\n";
    $request->Finish();
}
