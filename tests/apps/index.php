<?php
// php-fpm fixture for the integration tests: answers "Hello from php", then the $_SERVER
// entries it was given as NAME=VALUE lines (in the order received), then the length and md5
// of the request body read from php://input.
header('Content-Type: text/plain');
header('X-App: php');
$body = file_get_contents('php://input');
echo "Hello from php\n";
foreach ($_SERVER as $k => $v) {
    if (is_scalar($v)) {
        echo $k, '=', $v, "\n";
    }
}
echo 'BODY_LENGTH=', strlen($body), "\n";
echo 'BODY_MD5=', md5($body), "\n";
echo 'APP_PID=', getmypid(), "\n";
