/*
 * threaded_example: a multi-threaded libfcgi application written the way libfcgi's own
 * threaded example is: every thread takes one mutex around each FCGX_Accept_r call.
 *
 * Build:  gcc -O2 -Wall -o threaded_example threaded_example.c -lfcgi -lpthread
 * Usage:  threaded_example        (listen socket on fd 0), 4 threads
 *
 * Under FCGI_KEEP_CONN this pattern stalls: a thread finishes a request on a kept
 * connection, then waits for the mutex while another thread holds it inside accept(),
 * so the next request on the kept connection is not read until a new connection arrives.
 * Answers "thread ok\n" after 20 ms of "work" (during which another thread takes the
 * mutex: the stall then happens at once, whatever the scheduler).
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t accept_mutex = PTHREAD_MUTEX_INITIALIZER;

static void *serve(void *arg)
{
    FCGX_Request request;
    char buf[4096];
    (void)arg;
    FCGX_InitRequest(&request, 0, 0);
    for (;;) {
        int rc;
        pthread_mutex_lock(&accept_mutex);
        rc = FCGX_Accept_r(&request);
        pthread_mutex_unlock(&accept_mutex);
        if (rc < 0)
            break;
        while (FCGX_GetStr(buf, sizeof buf, request.in) > 0)
            ;
        /* Some work: meanwhile a waiting thread surely takes the mutex into accept(). */
        usleep(20000);
        FCGX_FPrintF(request.out, "Content-Type: text/plain\r\nContent-Length: 10\r\n\r\nthread ok\n");
        FCGX_Finish_r(&request);
    }
    return NULL;
}

int main(void)
{
    pthread_t t[3];
    int i;
    FCGX_Init();
    for (i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, serve, NULL);
    serve(NULL);
    return 0;
}
